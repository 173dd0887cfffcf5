"""Sums the JUnit XML of one `bazel test` invocation into pytest's closing line.

Usage: python3 tools/test_totals.py BEP_JSON
  BEP_JSON: the file written by `bazel test --build_event_json_file=BEP_JSON`.

Reads every test.xml the invocation's testResult events name (each shard of each
target, run now or taken from Bazel's cache) and prints, alone on the last line,
    N passed, N failed, N skipped
counting each <testcase> once: failed when it holds <failure> or <error>,
skipped when it holds <skipped>, else passed. A target whose status is not
PASSED (e.g. a timeout, or a crash before pytest wrote its XML) but whose XML
shows no failure counts one failed test more, so a failing target never reads
as green. Exits 0 when no test failed and at least one passed, else 1.
"""
import json
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

# Test outcomes other than these mean the target failed.
_GREEN = {"PASSED", "FLAKY"}


def _path(uri):
    return urllib.request.url2pathname(urllib.parse.urlparse(uri).path)


def count_xml(path):
    """(passed, failed, skipped) over the <testcase> elements of one JUnit XML file."""
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def totals(bep_lines):
    """The summed (passed, failed, skipped) and the labels of failed targets."""
    passed = failed = skipped = 0
    results = {}  # (label, shard, run) -> (status, xml path); the last attempt wins
    for line in bep_lines:
        if not line.strip():
            continue
        event = json.loads(line)
        key = event.get("id", {}).get("testResult")
        if key is None or "testResult" not in event:
            continue
        result = event["testResult"]
        xml = next((_path(f["uri"]) for f in result.get("testActionOutput", [])
                    if f.get("name") == "test.xml" and f.get("uri")), None)
        results[(key["label"], key.get("shard", 0), key.get("run", 0))] = (
            result.get("status", "NO_STATUS"), xml)
    bad_targets = []
    for (label, shard, _), (status, xml) in sorted(results.items()):
        p = f = s = 0
        if xml:
            try:
                p, f, s = count_xml(xml)
            except (OSError, ET.ParseError) as error:
                print(f"tools/test_totals.py: {label} shard {shard}: {error}", file=sys.stderr)
        if status not in _GREEN:
            bad_targets.append(f"{label} ({status})")
            f = max(f, 1)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    return (passed, failed, skipped), bad_targets


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as bep:
        (passed, failed, skipped), bad = totals(bep)
    for target in bad:
        print(f"FAILED target: {target}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
