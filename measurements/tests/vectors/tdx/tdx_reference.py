#!/usr/bin/env python3
"""Independent TDX MRTD / RTMR2 reference, written from the specifications, not from the Rust.

Sources:
  - edk2 OvmfPkg/ResetVector: GUIDed footer table at the end of the image (walked backwards);
  - Intel "TDX Virtual Firmware Design Guide" §11: TDVF metadata descriptor and sections;
  - Intel "TDX Module Base Architecture" spec: MRTD = SHA-384 over 128-byte
    MEM.PAGE.ADD / MR.EXTEND blocks (+256 data bytes per extend);
  - TCG/edk2: RTMR = SHA-384(RTMR || digest); the kernel's LoadOptions are measured as
    UTF-16LE + NUL;
  - edk2 OvmfPkg/Library/X86QemuLoadImageLib/X86QemuLoadImageLib.c (QemuLoadKernelImage):
    LoadOptions = fw_cfg command line + " initrd=initrd" when the fw_cfg initrd size is not 0.

Usage: tdx_reference.py OVMF.fd [--cmdline S] [--initrd FILE]
Prints key=value lines: mrtd_single_pass, mrtd_two_pass, rtmr2.
"""
import argparse
import hashlib
import struct
import uuid

FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
TDX_META = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2").bytes_le


def footer_entries(fw):
    end = len(fw) - 32
    total, guid = struct.unpack_from("<H16s", fw, end - 18)
    assert guid == FOOTER, "no footer table"
    start = end - total
    pos = end - 18
    while pos > start:
        elen, guid = struct.unpack_from("<H16s", fw, pos - 18)
        yield guid, fw[pos - elen:pos - 18]
        pos -= elen


def tdvf_sections(fw):
    data = dict(footer_entries(fw))[TDX_META]
    (off,) = struct.unpack("<I", data)
    base = len(fw) - off
    sig, _length, version, n = struct.unpack_from("<4sIII", fw, base)
    assert sig == b"TDVF" and version == 1
    return [struct.unpack_from("<IIQQII", fw, base + 16 + 32 * i) for i in range(n)]


def mrtd(fw, two_pass):
    h = hashlib.sha384()

    def add(gpa):
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))

    def extend(sec, page):
        data_off, raw, gpa, _, _, _ = sec
        for i in range(16):
            o = page * 4096 + i * 256
            h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + o) + bytes(104))
            chunk = fw[data_off + o:data_off + min(o + 256, raw)] if o < raw else b""
            h.update(chunk.ljust(256, b"\0"))

    for sec in tdvf_sections(fw):
        _, _, gpa, size, _, attr = sec
        pages = size // 4096
        measured = attr & 1
        aug = attr & 2
        if two_pass:
            for p in range(pages):
                if not aug:
                    add(gpa + p * 4096)
            for p in range(pages):
                if measured:
                    extend(sec, p)
        else:
            for p in range(pages):
                if not aug:
                    add(gpa + p * 4096)
                if measured:
                    extend(sec, p)
    return h.hexdigest()


def rtmr2(cmdline, initrd):
    reg = bytes(48)
    if initrd:  # None or b"": OVMF appends nothing
        cmdline += " initrd=initrd"
    events = [hashlib.sha384(cmdline.encode("utf-16-le") + b"\0\0").digest()]
    if initrd is not None:
        events.append(hashlib.sha384(initrd).digest())
    for d in events:
        reg = hashlib.sha384(reg + d).digest()
    return reg.hex()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ovmf")
    ap.add_argument("--cmdline", default="")
    ap.add_argument("--initrd")
    a = ap.parse_args()
    fw = open(a.ovmf, "rb").read()
    for s in tdvf_sections(fw):
        print("section=%08x %08x %016x %016x %d %d" % s)
    print("mrtd_single_pass=" + mrtd(fw, False))
    print("mrtd_two_pass=" + mrtd(fw, True))
    initrd = open(a.initrd, "rb").read() if a.initrd else None
    print("rtmr2=" + rtmr2(a.cmdline, initrd))


if __name__ == "__main__":
    main()
