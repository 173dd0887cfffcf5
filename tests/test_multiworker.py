"""LBFGS under tf.distribute.MultiWorkerMirroredStrategy: two worker processes on this machine.

The two workers talk over gRPC on 127.0.0.1, as two machines would over a network: each
holds the same data, takes its shard by its global replica id, and the value and gradient
are all-reduced across the workers. Their result must equal one process's.

On a busy machine (a 2-core CI runner, other jobs beside the suite) a worker can miss
TensorFlow's default coordination-service heartbeat (10 s) and the pair aborts
("heartbeat timeout", AbortedError); the workers therefore configure the service with
generous timeouts, and a start-up that still fails for such a reason of the cluster (not a
wrong result) is retried once on fresh ports.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

import keras_subset
from conftest import data_file, small_cnn

WORKER = textwrap.dedent(
    """
    import sys
    import tensorflow as tf

    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    # The coordination service as MultiWorkerMirroredStrategy would configure it, but with
    # timeouts for a busy machine: a heartbeat may be late by 2 minutes (default 10 s), and
    # registration and the shutdown barrier wait as long (the workers start and finish at
    # different times when the cores are shared). The strategy keeps a configured service.
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        cluster_register_timeout_in_ms=300_000,
        heartbeat_timeout_in_ms=120_000,
        shutdown_barrier_timeout_in_ms=300_000,
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=2)],
    )
    # The strategy must exist before TensorFlow starts its runtime; TF_CONFIG names the cluster.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import numpy as np
    import keras_subset
    from conftest import small_cnn

    data, out = sys.argv[1], sys.argv[2]
    with np.load(data) as d:
        x = d["x_train"][:601, ..., None].astype("float32") / 255.0
        y = d["y_train"][:601].astype("int32")
    w = np.linspace(0.5, 2.0, 601).astype("float32")
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    with strategy.scope():
        model = small_cnn(seed=3, l2=1e-3)
        np.savez(out + ".initial.npz", *model.get_weights())
        result = keras_subset.LBFGS(max_iterations=5, dtype="float64", chunk_size=128).minimize(
            model, x, y, sample_weight=w)
    np.savez(out, loss=result.loss, iterations=result.iterations, evaluations=result.evaluations,
             *model.get_weights())
    """
)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# Worker output that says the cluster itself failed (a port taken between `_free_ports` and
# the worker's bind, a peer that did not answer in time), not the code under test.
CLUSTER_FAILURES = ("Address already in use", "Failed to bind", "heartbeat timeout",
                    "UNAVAILABLE", "DEADLINE_EXCEEDED", "AbortedError")


def _run_workers(data, tmp_path):
    """Starts the two workers on fresh ports; returns their (return codes, outputs)."""
    tests = os.path.dirname(os.path.abspath(__file__))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            PYTHONPATH=os.pathsep.join([tests, os.path.dirname(tests), os.environ.get("PYTHONPATH", "")]),
            CUDA_VISIBLE_DEVICES="",
        )
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, data, str(tmp_path / f"worker{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=420)[0])
    finally:
        for proc in procs:
            proc.kill()
    return [proc.returncode for proc in procs], outputs


def test_two_workers_match_one_process(mnist, tmp_path):
    codes, outputs = _run_workers(data_file("mnist.npz"), tmp_path)
    if any(codes) and any(m in out for out in outputs for m in CLUSTER_FAILURES):
        codes, outputs = _run_workers(data_file("mnist.npz"), tmp_path)
    for code, output in zip(codes, outputs):
        assert code == 0, output[-4000:]

    x, y = mnist[0][:601], mnist[1][:601]
    w = np.linspace(0.5, 2.0, 601).astype("float32")
    model = small_cnn(seed=3, l2=1e-3)
    with np.load(tmp_path / "worker0.npz.initial.npz") as initial:
        model.set_weights([initial[f"arr_{i}"] for i in range(len(model.get_weights()))])
    single = keras_subset.LBFGS(max_iterations=5, dtype="float64", chunk_size=128).minimize(model, x, y, sample_weight=w)
    for index in range(2):
        with np.load(tmp_path / f"worker{index}.npz") as worker:
            assert int(worker["iterations"]) == single.iterations == 5
            np.testing.assert_allclose(float(worker["loss"]), single.loss, rtol=1e-5)
            assert float(worker["loss"]) < single.initial_loss
            weights = [worker[f"arr_{i}"] for i in range(len(model.get_weights()))]
        for a, b in zip(weights, model.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-4)
