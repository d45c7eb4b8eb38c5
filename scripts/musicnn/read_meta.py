#!/usr/bin/env python3
"""Stdlib-only dump of the inference graph in a TF1 .meta (MetaGraphDef) file.
Usage: read_meta.py PATH/.meta [--all]   (default: only nodes under 'model/' excluding gradients/optimizer)"""
import sys, struct
sys.path.insert(0, __import__('os').path.dirname(__file__))
from read_ckpt import proto_fields

def attr_value(buf):
    # AttrValue: 1 list, 2 s, 3 i, 4 f, 5 b, 6 type, 7 shape, 8 tensor
    out = {}
    for f, wt, v in proto_fields(buf):
        if f == 2: out['s'] = v.decode(errors='replace')
        elif f == 3: out['i'] = v
        elif f == 4: out['f'] = struct.unpack('<f', struct.pack('<I', v))[0]
        elif f == 5: out['b'] = bool(v)
        elif f == 6: out['type'] = v
        elif f == 7: out['shape'] = 'shape'
        elif f == 8: out['tensor'] = tensor_summary(v)
        elif f == 1:
            lst = {'i': [], 's': []}
            for f2, wt2, v2 in proto_fields(v):
                if f2 == 3:
                    if wt2 == 2:  # packed
                        p = 0
                        from read_ckpt import varint
                        while p < len(v2):
                            x, p = varint(v2, p); lst['i'].append(x)
                    else: lst['i'].append(v2)
                elif f2 == 2: lst['s'].append(v2.decode(errors='replace'))
            out['list'] = lst['i'] or lst['s']
    return out

def tensor_summary(buf):
    # TensorProto: 1 dtype, 2 tensor_shape, 4 tensor_content, 5 float_val, 7 int_val
    from read_ckpt import parse_shape, varint
    d = {}
    for f, wt, v in proto_fields(buf):
        if f == 2: d['shape'] = parse_shape(v)[0]
        elif f == 4:
            n = len(v) // 4
            d['content_i32'] = list(struct.unpack('<%di' % n, v))[:16]
        elif f == 5:
            if wt == 2: d['float'] = list(struct.unpack('<%df' % (len(v)//4), v))
            else: d.setdefault('float', []).append(struct.unpack('<f', struct.pack('<I', v))[0])
        elif f == 7:
            if wt == 2:
                p, xs = 0, []
                while p < len(v):
                    x, p = varint(v, p); xs.append(x - (1 << 64) if x >= 1 << 63 else x)
                d['int'] = xs
            else: d.setdefault('int', []).append(v)
    return d

def nodes(meta):
    for f, _, v in proto_fields(meta):
        if f == 2:  # graph_def
            for f2, _, n in proto_fields(v):
                if f2 == 1:
                    node = {'name': '', 'op': '', 'input': [], 'attr': {}}
                    for f3, _, x in proto_fields(n):
                        if f3 == 1: node['name'] = x.decode()
                        elif f3 == 2: node['op'] = x.decode()
                        elif f3 == 3: node['input'].append(x.decode())
                        elif f3 == 5:
                            k = a = None
                            for f4, _, y in proto_fields(x):
                                if f4 == 1: k = y.decode()
                                elif f4 == 2: a = attr_value(y)
                            node['attr'][k] = a
                    yield node

KEEP = ('padding', 'strides', 'epsilon', 'ksize', 'data_format', 'value', 'Tidx', 'keep_dims',
        'dilations', 'is_training', 'axis', 'squeeze_dims', 'perm')
if __name__ == '__main__':
    meta = open(sys.argv[1], 'rb').read()
    allnodes = '--all' in sys.argv
    for n in nodes(meta):
        nm = n['name']
        if not allnodes and (not nm.startswith('model/') or 'gradients' in nm or '/Adam' in nm
                             or 'Initializer' in nm or 'cond_' in nm):
            continue
        attrs = {k: v for k, v in n['attr'].items() if k in KEEP}
        print(nm, n['op'], n['input'], attrs if attrs else '')
