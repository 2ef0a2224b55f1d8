# Runs a program many times with exact bytes — argv (Node passes argv only as UTF-8 strings), stdin, environment — and
# cheaply (one fork of this small process per run, not of a test worker). For the hook and runtime-wrapper fuzz tests.
# Usage: exec-bytes.py PROGRAM CWD TIMEOUT_S. Each stdin line is a case
#   {"argv": [hex, ...], "stdin": hex, "env": {name: value}, "record": path}   (all optional but argv)
# and each stdout line its result
#   {"code": C, "hung": bool, "stdout": hex, "stderr": hex, "argv": [hex, ...] | null}
# where a negative code is the signal that ended it, hung means it was still running at TIMEOUT_S (then killed), and
# argv is what a stand-in wrote NUL-separated to the case's record file (null: it did not run).
import json
import os
import subprocess
import sys

program, cwd, timeout = os.fsencode(sys.argv[1]), sys.argv[2], float(sys.argv[3])
for line in sys.stdin:
    case = json.loads(line)
    record = case.get("record")
    if record:
        try:
            os.unlink(record)
        except FileNotFoundError:
            pass
    env = dict(os.environ, **case.get("env", {}))
    hung = False
    try:
        p = subprocess.run([program] + [bytes.fromhex(a) for a in case["argv"]], cwd=cwd, env=env,
                           input=bytes.fromhex(case.get("stdin", "")), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        code, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        hung, code, out, err = True, None, e.stdout or b"", e.stderr or b""
    argv = None
    if record and os.path.exists(record):
        with open(record, "rb") as f:
            argv = [a.hex() for a in f.read().split(b"\0")[:-1]]
    print(json.dumps({"code": code, "hung": hung, "stdout": out.hex(), "stderr": err.hex(), "argv": argv}), flush=True)
