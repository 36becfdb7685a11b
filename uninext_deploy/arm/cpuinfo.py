"""Run under qemu-aarch64: print a /proc/cpuinfo describing the emulated CPU.

qemu 7.2 passes the host's x86 /proc/cpuinfo through to the guest, and ONNX Runtime's CPU detection
(pytorch/cpuinfo) crashes at import when it finds no ARM cores there. ``qemu -L ROOT`` looks every path up
under ROOT first, so this file, placed at ROOT/proc/cpuinfo, is what the guest reads. It must describe the
CPU qemu emulates: MIDR_EL1 (read with ``mrs``) and the feature bits of getauxval(HWCAP / HWCAP2); a wrong
MIDR makes the detection claim instructions (dotprod) the emulated CPU lacks, and INT8 then dies of SIGILL.
"""

import ctypes
import mmap
import os
import struct

HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
         "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
          "svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme smei16i64 smef64f64 smei8i32 smef16f32 "
          "smeb16f32 smef32f32 smefa64 wfxt ebf16 sveebf16").split()


def midr() -> int:
    code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(struct.pack("<II", 0xD5380000, 0xD65F03C0))  # mrs x0, midr_el1 ; ret
    return ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()


def main() -> None:
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    bits1, bits2 = libc.getauxval(16), libc.getauxval(26)  # AT_HWCAP, AT_HWCAP2
    features = [n for i, n in enumerate(HWCAP) if bits1 >> i & 1] + [n for i, n in enumerate(HWCAP2) if bits2 >> i & 1]
    value = midr()
    for index in range(os.cpu_count() or 1):
        print(f"processor\t: {index}\nBogoMIPS\t: 100.00\nFeatures\t: {' '.join(features)}\n"
              f"CPU implementer\t: {value >> 24 & 0xff:#04x}\nCPU architecture: 8\n"
              f"CPU variant\t: {value >> 20 & 0xf:#x}\nCPU part\t: {value >> 4 & 0xfff:#05x}\n"
              f"CPU revision\t: {value & 0xf}\n")


if __name__ == "__main__":
    main()
