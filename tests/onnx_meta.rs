//! Test helper: rewrite an ONNX file's `metadata_props` without touching its graph.
//!
//! An ONNX file is a protobuf `ModelProto`; `metadata_props` is its repeated field 14 of
//! `StringStringEntryProto { key = 1, value = 2 }`. This copies every other top-level field byte for
//! byte and appends the new entries, so the graph and weights stay exactly as exported.
#![allow(dead_code)]

use std::path::Path;

const METADATA_PROPS: u64 = 14;

fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
        shift += 7;
        assert!(shift < 64, "varint too long");
    }
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn write_bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    write_varint(out, (field << 3) | 2);
    write_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// The ONNX bytes with `metadata_props` replaced by `props` (key, value) in order.
pub fn with_metadata(onnx: &[u8], props: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(onnx.len() + 4096);
    let mut pos = 0;
    while pos < onnx.len() {
        let start = pos;
        let key = read_varint(onnx, &mut pos);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                read_varint(onnx, &mut pos);
            }
            1 => pos += 8,
            2 => {
                let len = read_varint(onnx, &mut pos) as usize;
                pos += len;
            }
            5 => pos += 4,
            other => panic!("unexpected protobuf wire type {other}"),
        }
        assert!(pos <= onnx.len(), "truncated protobuf");
        if !(field == METADATA_PROPS && wire == 2) {
            out.extend_from_slice(&onnx[start..pos]);
        }
    }
    for (k, v) in props {
        let mut entry = Vec::new();
        write_bytes_field(&mut entry, 1, k.as_bytes());
        write_bytes_field(&mut entry, 2, v.as_bytes());
        write_bytes_field(&mut out, METADATA_PROPS, &entry);
    }
    out
}

/// Copies `src` to `dst` with `metadata_props` replaced.
pub fn rewrite(src: &Path, dst: &Path, props: &[(&str, &str)]) {
    let bytes = std::fs::read(src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    std::fs::write(dst, with_metadata(&bytes, props)).expect("write the rewritten model");
}
