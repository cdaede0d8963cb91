#!/usr/bin/env python3
"""tests/py/safetensors_interop.py - tessel's safetensors files against the reference package.

CTest entry `safetensors_interop` (label `py`):

    python3 tests/py/safetensors_interop.py --venv .venv --tool build/tests/tessel_st_roundtrip

Checks, for every dtype tessel holds (F32, F64, BF16, F16, I32, I64, BOOL) and for 0-d, empty,
dense and non-contiguous tensors:
  1. files tessel writes load in the reference `safetensors` package (its strict Rust parser,
     plus safetensors.numpy for the dtypes numpy has) with the exact bytes and metadata;
  2. files the reference package writes (numpy API; BF16 from raw bits, numpy has no bf16)
     load in tessel with the exact bytes and metadata;
  3. a reference file copied through tessel (load, save) is byte-for-byte what the reference
     package reads back.

Runs inside the project's virtual environment (tools/py/setup makes it). Without it, the test
is skipped: exit code 77 (CTest SKIP_RETURN_CODE) and a message saying how to create it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77


def skip(msg):
    print(f"SKIPPED: safetensors_interop: {msg}", flush=True)
    sys.exit(SKIP)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", required=True, help="the project's virtual environment (.venv)")
    p.add_argument("--tool", required=True, help="path of the tessel_st_roundtrip program")
    return p.parse_args()


def enter_venv(venv):
    """Re-runs this script with the venv's Python unless already inside it."""
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        skip(f"no Python environment at {venv}; create it with tools/py/setup (needs PyPI)")
    if os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(py, [py] + sys.argv)


# ---------------------------------------------------------------- the canonical tensors
# Mirrors tests/py/st_roundtrip.cpp: element i (row-major) of every tensor of dtype D.
DTYPES = ["F32", "F64", "BF16", "F16", "I32", "I64", "BOOL"]


def value(d, i):
    if d == "I32":
        return (i * 7919) % 20011 - 10000
    if d == "I64":
        return (i - 2) * 1099511627776 + 3
    if d == "BOOL":
        return i % 3 == 0
    return (i % 7 - 3) * 0.625 + i // 7


def canonical(np):
    """name -> (dtype name, shape, little-endian bytes), the same set tessel writes."""
    npdtype = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64,
               "BOOL": np.bool_}
    out = {}
    for d in DTYPES:
        for kind, shape in [("scalar", ()), ("empty", (0, 4)), ("mat", (3, 5)), ("view", (3, 5))]:
            n = 1
            for s in shape:
                n *= s
            vals = [value(d, i) for i in range(n)]
            if d == "BF16":  # the top 16 bits of the f32 (values are exact in bf16)
                bits = (np.array(vals, dtype="<f4").reshape(shape).view("<u4") >> 16).astype("<u2")
                data = bits.tobytes()
            else:
                data = np.array(vals, dtype=npdtype[d]).reshape(shape).astype(np.dtype(npdtype[d]).newbyteorder("<")).tobytes()
            out[f"{d}_{kind}"] = (d, list(shape), data)
    return out


def check(cond, msg):
    if not cond:
        print(f"FAILED: {msg}", flush=True)
        sys.exit(1)


def reference_reads(path, expect, expect_meta, np):
    """The reference package's strict parser, and safetensors.numpy, read `path` as expected."""
    import safetensors
    import safetensors.numpy

    with open(path, "rb") as f:
        raw = f.read()
    got = dict(safetensors.deserialize(raw))
    check(set(got) == set(expect), f"{path}: names {sorted(got)} != {sorted(expect)}")
    for name, (d, shape, data) in expect.items():
        g = got[name]
        check(g["dtype"] == d, f"{path}: {name} dtype {g['dtype']} != {d}")
        check(list(g["shape"]) == shape, f"{path}: {name} shape {g['shape']} != {shape}")
        check(bytes(g["data"]) == data, f"{path}: {name} bytes differ")
    with safetensors.safe_open(path, framework="numpy") as f:
        check((f.metadata() or {}) == expect_meta, f"{path}: metadata {f.metadata()} != {expect_meta}")
        for name, (d, shape, data) in expect.items():
            if d == "BF16":
                continue  # numpy has no bfloat16; the raw bytes were compared above
            arr = f.get_tensor(name)
            check(list(arr.shape) == shape and arr.tobytes() == data, f"{path}: numpy view of {name} differs")


def reference_writes(path, expect, meta, np):
    """Writes `expect` with the reference package: numpy dtypes through safetensors.numpy, BF16
    as raw bits through the package's serializer (its API changed across versions)."""
    import safetensors
    import safetensors.numpy

    arrays, raw = {}, {}
    for name, (d, shape, data) in expect.items():
        if d == "BF16":
            raw[name] = (shape, np.frombuffer(data, dtype="<u2").reshape(shape).copy())
        else:
            dt = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "BOOL": "?"}[d]
            arrays[name] = np.frombuffer(data, dtype=dt).reshape(shape).copy()
    # numpy arrays and the bf16 bit patterns in one file, through the package's own writer.
    if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.7: specs hold raw pointers
        specs = {k: safetensors.TensorSpec(dtype=v.dtype.name, shape=list(v.shape), data_ptr=v.ctypes.data,
                                           data_len=v.nbytes) for k, v in arrays.items()}
        specs.update({k: safetensors.TensorSpec(dtype="bfloat16", shape=shape, data_ptr=bits.ctypes.data,
                                                data_len=bits.nbytes) for k, (shape, bits) in raw.items()})
    else:  # older: dicts with the bytes
        specs = {k: {"dtype": v.dtype.name, "shape": list(v.shape), "data": v.tobytes()} for k, v in arrays.items()}
        specs.update({k: {"dtype": "bfloat16", "shape": shape, "data": bits.tobytes()}
                      for k, (shape, bits) in raw.items()})
    safetensors.serialize_file(specs, path, metadata=meta)
    # And a numpy-only file through the public numpy API, to cover the path users take.
    safetensors.numpy.save_file(arrays, path + ".np", metadata=meta)


def tessel_dump(tool, path):
    r = subprocess.run([tool, "dump", path], capture_output=True, text=True)
    check(r.returncode == 0, f"tessel could not read {path}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def tessel_reads(tool, path, expect, expect_meta):
    got = tessel_dump(tool, path)
    names = [t["name"] for t in got["tensors"]]
    check(sorted(names) == sorted(expect), f"tessel read names {sorted(names)} from {path}, expected {sorted(expect)}")
    check(got["metadata"] == expect_meta, f"tessel read metadata {got['metadata']} from {path}")
    for t in got["tensors"]:
        d, shape, data = expect[t["name"]]
        check(t["dtype"] == d and t["shape"] == shape, f"tessel read {t['name']} as {t['dtype']} {t['shape']}")
        check(bytes.fromhex(t["hex"]) == data, f"tessel read different bytes for {t['name']} from {path}")


def main():
    args = parse_args()
    enter_venv(args.venv)
    try:
        import numpy as np
        import safetensors
    except ImportError as e:
        skip(f"{args.venv} lacks a package ({e}); rerun tools/py/setup")
    print(f"reference: safetensors {safetensors.__version__}, numpy {np.__version__}", flush=True)

    expect = canonical(np)
    tessel_meta = {"writer": "tessel", "note": "µ-units, \"quoted\""}
    ref_meta = {"writer": "reference", "format": "np"}
    with tempfile.TemporaryDirectory(prefix="tessel_interop_") as tmp:
        # 1. tessel writes, the reference reads.
        t_path = os.path.join(tmp, "from_tessel.safetensors")
        r = subprocess.run([args.tool, "write", t_path], capture_output=True, text=True)
        check(r.returncode == 0, f"tessel could not write: {r.stderr.strip()}")
        reference_reads(t_path, expect, tessel_meta, np)
        print(f"ok: {len(expect)} tensors written by tessel read back by the reference package", flush=True)

        # 2. the reference writes, tessel reads.
        r_path = os.path.join(tmp, "from_reference.safetensors")
        reference_writes(r_path, expect, ref_meta, np)
        tessel_reads(args.tool, r_path, expect, ref_meta)
        np_only = {k: v for k, v in expect.items() if v[0] != "BF16"}
        tessel_reads(args.tool, r_path + ".np", np_only, ref_meta)
        print(f"ok: {len(expect)} tensors written by the reference package read by tessel", flush=True)

        # 3. through tessel and back.
        c_path = os.path.join(tmp, "copied.safetensors")
        r = subprocess.run([args.tool, "copy", r_path, c_path], capture_output=True, text=True)
        check(r.returncode == 0, f"tessel could not copy: {r.stderr.strip()}")
        reference_reads(c_path, expect, ref_meta, np)
        print("ok: a reference file copied through tessel reads back identically", flush=True)
    print("PASSED: safetensors_interop", flush=True)


if __name__ == "__main__":
    main()
