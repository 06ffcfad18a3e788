"""Write .npy fixtures with numpy for test_npy: good files in header versions 1.0 / 2.0 / 3.0,
and files lmr must refuse (truncated, wrong dtype, Fortran order, big-endian, ...).
Each good NAME.npy gets NAME.raw: the C-order little-endian bytes numpy holds for it."""
import os
import sys

import numpy as np

out = sys.argv[1]


def good(name, arr, version):
    with open(os.path.join(out, name + ".npy"), "wb") as f:
        np.lib.format.write_array(f, arr, version=version)
    with open(os.path.join(out, name + ".raw"), "wb") as f:
        f.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())


def bad(name, arr, version=(1, 0), fortran=False):
    with open(os.path.join(out, name + ".npy"), "wb") as f:
        np.lib.format.write_array(f, np.asfortranarray(arr) if fortran else arr, version=version)


rng = np.random.default_rng(7)
ramp = (np.arange(3 * 5).reshape(3, 5) * 0.5 - 3).astype("<f4")
good("v1_f4", ramp, (1, 0))
good("v2_f4", rng.standard_normal((37, 64)).astype("<f4"), (2, 0))
good("v3_f2", rng.standard_normal((9, 2048)).astype("<f2"), (3, 0))
good("v1_f2", (np.arange(4 * 6).reshape(4, 6) * 0.25).astype("<f2"), (1, 0))
good("v1_rows0", np.zeros((0, 16), "<f4"), (1, 0))
good("v1_big", rng.standard_normal((300, 2048)).astype("<f4"), (1, 0))

bad("f8", rng.standard_normal((3, 4)), (1, 0))
bad("i4", np.arange(12, dtype="<i4").reshape(3, 4))
bad("fortran", rng.standard_normal((3, 4)).astype("<f4"), fortran=True)
bad("bigendian", rng.standard_normal((3, 4)).astype(">f4"))
bad("onedim", np.zeros(7, "<f4"))
bad("threedim", np.zeros((2, 3, 4), "<f4"))
with open(os.path.join(out, "v1_f4.npy"), "rb") as f:
    whole = f.read()
with open(os.path.join(out, "truncated.npy"), "wb") as f:
    f.write(whole[:-7])
with open(os.path.join(out, "trailing.npy"), "wb") as f:
    f.write(whole + b"\0\0\0\0")
with open(os.path.join(out, "version4.npy"), "wb") as f:
    f.write(whole[:6] + b"\x04\x00" + whole[8:])
with open(os.path.join(out, "badmagic.npy"), "wb") as f:
    f.write(b"\x93NUMPZ" + whole[6:])
with open(os.path.join(out, "badheader.npy"), "wb") as f:
    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5 }"
    hdr += b" " * (118 - len(hdr)) + b"\n"
    f.write(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr + whole[128:])
with open(os.path.join(out, "shortheader.npy"), "wb") as f:
    f.write(whole[:40])
