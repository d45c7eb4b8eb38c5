#!/usr/bin/env python3
"""Stdlib-only reader for TensorFlow (TF1/TF2 "V2" format) checkpoints.

A checkpoint with prefix P is two files:
  P.index                  LevelDB-format SSTable: key = tensor name, value = BundleEntryProto
                           (key "" holds the BundleHeaderProto)
  P.data-00000-of-00001    raw little-endian tensor bytes, located by (shard_id, offset, size)

Usage:
  read_ckpt.py PREFIX                      # table of variables (name, dtype, shape, offset, size)
  read_ckpt.py PREFIX --verify             # also read every tensor and check size and masked crc32c
  read_ckpt.py PREFIX --json OUT.json      # variable table as JSON
  read_ckpt.py PREFIX --safetensors OUT.safetensors [--skip-optimizer]
                                           # copy tensors as-is (TF names, TF layouts) to safetensors
  read_ckpt.py PREFIX --dump NAME [--n 8]  # print first values of one tensor

musicnn's packaged checkpoints have an empty file-name prefix: PREFIX = .../MTT_musicnn/
(the files are literally named ".index" and ".data-00000-of-00001").

Format notes (leveldb/table/format.{h,cc}, block.cc; tensorflow/core/util/tensor_bundle):
  * Footer = last 48 bytes: metaindex BlockHandle, index BlockHandle (each = varint64 offset,
    varint64 size), zero padding up to 40 bytes, then magic fixed64 0xdb4775248b80fb57 (LE).
  * Each block is followed by a 5-byte trailer: 1 byte compression type (0 = none,
    1 = snappy) + fixed32 masked crc32c of (block bytes + type byte). A BlockHandle's size
    excludes the trailer. TF's BundleWriter sets kNoCompression; snappy is rejected here.
  * Block = entries then restart array (fixed32 * num_restarts) then fixed32 num_restarts.
    Entry = varint32 shared, varint32 non_shared, varint32 value_len, key delta, value;
    the key is prefix-compressed against the previous key (shared bytes reused).
  * Index block: key = separator >= last key of a data block, value = BlockHandle of it.
  * BundleEntryProto: 1 dtype (enum), 2 shape (TensorShapeProto: 2 = repeated Dim{1 size}),
    3 shard_id, 4 offset, 5 size, 6 crc32c (fixed32, *masked*), 7 slices (partitioned vars).
  * BundleHeaderProto: 1 num_shards, 2 endianness (0 = LITTLE), 3 version (VersionDef).
"""
import json
import os
import struct
import sys
from collections import OrderedDict

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_LEN = 48

DTYPES = {  # tensorflow/core/framework/types.proto: (name, bytes per element, struct code)
    1: ("float32", 4, "f"), 2: ("float64", 8, "d"), 3: ("int32", 4, "i"), 4: ("uint8", 1, "B"),
    5: ("int16", 2, "h"), 6: ("int8", 1, "b"), 7: ("string", None, None), 9: ("int64", 8, "q"),
    10: ("bool", 1, "?"), 14: ("bfloat16", 2, None), 17: ("uint16", 2, "H"),
    19: ("float16", 2, "e"), 22: ("uint32", 4, "I"), 23: ("uint64", 8, "Q"),
}
SAFETENSORS_DTYPE = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64",
                     "float16": "F16", "uint8": "U8", "int8": "I8", "int16": "I16",
                     "bool": "BOOL", "bfloat16": "BF16"}


# ---------------------------------------------------------------- crc32c (Castagnoli)
def _crc_table():
    poly = 0x82F63B78
    tab = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        tab.append(c)
    return tab


_CRC_TAB = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    tab = _CRC_TAB
    for b in data:
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc_unmask(m):
    rot = (m - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---------------------------------------------------------------- varint / protobuf
def varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def proto_fields(buf):
    """Yield (field_number, wire_type, value) of a protobuf message (no schema needed)."""
    pos = 0
    while pos < len(buf):
        tag, pos = varint(buf, pos)
        field, wt = tag >> 3, tag & 7
        if wt == 0:
            val, pos = varint(buf, pos)
        elif wt == 1:
            val = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wt == 2:
            n, pos = varint(buf, pos)
            val = bytes(buf[pos:pos + n])
            pos += n
        elif wt == 5:
            val = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield field, wt, val


def parse_shape(buf):
    dims, unknown_rank = [], False
    for f, _, v in proto_fields(buf):
        if f == 2:  # Dim
            size = 0
            for f2, _, v2 in proto_fields(v):
                if f2 == 1:
                    size = v2 - (1 << 64) if v2 >= 1 << 63 else v2  # int64 (-1 = unknown)
            dims.append(size)
        elif f == 3:
            unknown_rank = bool(v)
    return dims, unknown_rank


def parse_entry(buf):
    e = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "crc32c": None,
         "slices": 0}
    for f, _, v in proto_fields(buf):
        if f == 1:
            e["dtype"] = v
        elif f == 2:
            e["shape"], _ = parse_shape(v)
        elif f == 3:
            e["shard_id"] = v
        elif f == 4:
            e["offset"] = v
        elif f == 5:
            e["size"] = v
        elif f == 6:
            e["crc32c"] = v
        elif f == 7:
            e["slices"] += 1
    return e


def parse_header(buf):
    h = {"num_shards": 0, "endianness": 0, "version": {}}
    for f, _, v in proto_fields(buf):
        if f == 1:
            h["num_shards"] = v
        elif f == 2:
            h["endianness"] = v
        elif f == 3:
            h["version"] = {{1: "producer", 2: "min_consumer"}.get(f2, "f%d" % f2): v2
                            for f2, _, v2 in proto_fields(v)}
    return h


# ---------------------------------------------------------------- SSTable
def read_block(data, handle, stats):
    off, size = handle
    block = data[off:off + size]
    ctype = data[off + size]
    (masked,) = struct.unpack_from("<I", data, off + size + 1)
    stats["blocks"] += 1
    stats["compression"].add(ctype)
    if crc32c(data[off:off + size + 1]) != crc_unmask(masked):
        raise ValueError("block crc mismatch at offset %d" % off)
    if ctype == 1:
        raise ValueError("block at %d is snappy-compressed; not supported (stdlib only)" % off)
    if ctype != 0:
        raise ValueError("unknown compression type %d" % ctype)
    return block


def block_entries(block):
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = varint(block, pos)
        non_shared, pos = varint(block, pos)
        vlen, pos = varint(block, pos)
        key = key[:shared] + bytes(block[pos:pos + non_shared])
        pos += non_shared
        yield key, bytes(block[pos:pos + vlen])
        pos += vlen


def decode_handle(buf, pos=0):
    off, pos = varint(buf, pos)
    size, pos = varint(buf, pos)
    return (off, size), pos


def read_sstable(path):
    data = open(path, "rb").read()
    footer = data[-FOOTER_LEN:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != TABLE_MAGIC:
        raise ValueError("%s: bad table magic %#x" % (path, magic))
    metaindex, p = decode_handle(footer, 0)
    index, _ = decode_handle(footer, p)
    stats = {"blocks": 0, "compression": set(), "file_size": len(data),
             "metaindex": metaindex, "index": index}
    out = OrderedDict()
    for _sep, hval in block_entries(read_block(data, index, stats)):
        handle, _ = decode_handle(hval)
        for k, v in block_entries(read_block(data, handle, stats)):
            out[k] = v
    return out, stats


# ---------------------------------------------------------------- checkpoint
class Checkpoint:
    def __init__(self, prefix):
        self.prefix = prefix
        raw, self.table_stats = read_sstable(prefix + ".index")
        self.header = parse_header(raw.pop(b"", b""))
        if self.header["endianness"] != 0:
            raise ValueError("big-endian checkpoint")
        self.entries = OrderedDict((k.decode(), parse_entry(v)) for k, v in raw.items())
        self._shards = {}

    def shard_path(self, shard_id):
        return "%s.data-%05d-of-%05d" % (self.prefix, shard_id, max(self.header["num_shards"], 1))

    def raw(self, name):
        e = self.entries[name]
        if e["shard_id"] not in self._shards:
            self._shards[e["shard_id"]] = open(self.shard_path(e["shard_id"]), "rb").read()
        return self._shards[e["shard_id"]][e["offset"]:e["offset"] + e["size"]]

    def check(self, name, crc=True):
        e = self.entries[name]
        dname, width, _ = DTYPES.get(e["dtype"], ("dt%d" % e["dtype"], None, None))
        b = self.raw(name)
        n = 1
        for d in e["shape"]:
            n *= d
        if width is not None and len(b) != n * width:
            raise ValueError("%s: %d bytes, expected %d*%d" % (name, len(b), n, width))
        if crc and e["crc32c"] is not None and crc32c(b) != crc_unmask(e["crc32c"]):
            raise ValueError("%s: data crc32c mismatch" % name)
        return len(b)

    def values(self, name):
        e = self.entries[name]
        _, width, code = DTYPES[e["dtype"]]
        b = self.raw(name)
        return struct.unpack("<%d%s" % (len(b) // width, code), b)

    def is_optimizer(self, name):
        return name.endswith("/Adam") or name.endswith("/Adam_1") or name.startswith("beta1_power") \
            or name.startswith("beta2_power") or name == "global_step"

    def to_safetensors(self, out, skip_optimizer=True):
        header, chunks, off = OrderedDict(), [], 0
        for name, e in self.entries.items():
            if skip_optimizer and self.is_optimizer(name):
                continue
            dname = DTYPES[e["dtype"]][0]
            b = self.raw(name)
            header[name] = {"dtype": SAFETENSORS_DTYPE[dname], "shape": e["shape"],
                            "data_offsets": [off, off + len(b)]}
            chunks.append(b)
            off += len(b)
        # Name the checkpoint by its directory only (MTT_musicnn for musicnn's empty-prefix
        # checkpoints), so that the file, and its checksum, do not depend on where it was read.
        source = os.path.basename(self.prefix) or os.path.basename(os.path.dirname(self.prefix))
        header["__metadata__"] = {"source": "TensorFlow checkpoint " + source,
                                  "layout": "TF: conv2d kernel [kh, kw, in, out]; dense [in, out]"}
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * (-len(hb) % 8)
        with open(out, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for c in chunks:
                f.write(c)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    ck = Checkpoint(argv[1])
    args = argv[2:]
    st = ck.table_stats
    print("# %s.index: %d bytes, %d blocks, compression types %s, header %s"
          % (ck.prefix, st["file_size"], st["blocks"], sorted(st["compression"]), ck.header))
    verify = "--verify" in args
    total = 0
    print("%-62s %-8s %-18s %5s %9s %8s" % ("name", "dtype", "shape", "shard", "offset", "size"))
    for name, e in ck.entries.items():
        dname = DTYPES.get(e["dtype"], ("dt%d" % e["dtype"],))[0]
        if verify:
            ck.check(name)
        total += e["size"]
        print("%-62s %-8s %-18s %5d %9d %8d%s" % (name, dname, e["shape"], e["shard_id"],
                                                  e["offset"], e["size"],
                                                  "  (sliced)" if e["slices"] else ""))
    print("# %d tensors, %d data bytes%s" % (len(ck.entries), total,
                                            ", all sizes and crc32c verified" if verify else ""))
    if "--json" in args:
        out = args[args.index("--json") + 1]
        json.dump({"header": ck.header, "tensors": [
            dict(name=n, dtype=DTYPES.get(e["dtype"], ("dt%d" % e["dtype"],))[0], **{
                k: e[k] for k in ("shape", "shard_id", "offset", "size", "crc32c")})
            for n, e in ck.entries.items()]}, open(out, "w"), indent=1)
    if "--safetensors" in args:
        ck.to_safetensors(args[args.index("--safetensors") + 1],
                          skip_optimizer="--keep-optimizer" not in args)
    if "--dump" in args:
        name = args[args.index("--dump") + 1]
        n = int(args[args.index("--n") + 1]) if "--n" in args else 8
        print(name, ck.entries[name]["shape"], ck.values(name)[:n])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
