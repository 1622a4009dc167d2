//! Wire format: exact layouts, round trips, and every malformed shape.

use iommu::protocol::*;
use syscall::error::{EINVAL, EOVERFLOW};

#[test]
fn request_layout_is_little_endian_at_fixed_offsets() {
    let raw = RawRequest::new(
        Opcode::Map,
        0x0403_0201,
        0x1112_1314_1516_1718,
        0x2122_2324_2526_2728,
        0x3132_3334_3536_3738,
    );
    let b = raw.encode();
    assert_eq!(&b[0..2], &[0x10, 0x00]);
    assert_eq!(&b[2..4], &[0x01, 0x00]);
    assert_eq!(&b[4..8], &[0x01, 0x02, 0x03, 0x04]);
    assert_eq!(b[8], 0x18);
    assert_eq!(b[15], 0x11);
    assert_eq!(b[16], 0x28);
    assert_eq!(b[31], 0x31);
    assert_eq!(RawRequest::decode(&b), Ok(raw));
}

#[test]
fn response_layout_is_little_endian_at_fixed_offsets() {
    let r = Response::ok(Opcode::Translate, 7, 0x1000, 0xABCD_E000, 0);
    let b = r.encode();
    assert_eq!(b.len(), 36);
    assert_eq!(&b[0..4], &[0, 0, 0, 0]);
    assert_eq!(&b[4..6], &[0x12, 0]);
    assert_eq!(&b[6..8], &[1, 0]);
    assert_eq!(&b[8..12], &[7, 0, 0, 0]);
    assert_eq!(&b[12..20], &0x1000u64.to_le_bytes());
    assert_eq!(&b[20..28], &0xABCD_E000u64.to_le_bytes());
    assert_eq!(Response::decode(&b), Ok(r));
    let e = Response::error(0x11, EINVAL);
    let b = e.encode();
    assert_eq!(&b[0..4], &(-EINVAL).to_le_bytes());
    assert_eq!(
        Response::decode(&b).unwrap().result().unwrap_err().errno,
        EINVAL
    );
    assert_eq!(Response::decode(&b[..35]), Err(DecodeError::Short));
    assert_eq!(Response::decode(&[0; 37]), Err(DecodeError::Long));
}

#[test]
fn every_request_round_trips() {
    let requests = [
        Request::Query,
        Request::CreateDomain { id: None },
        Request::CreateDomain { id: Some(7) },
        Request::DestroyDomain { id: 7 },
        Request::InitUnits { unit: None },
        Request::InitUnits { unit: Some(1) },
        Request::Map {
            flags: MapFlags::READ,
            phys: 0x1000,
            size: 0x2000,
            iova: None,
        },
        Request::Map {
            flags: MapFlags::READ_WRITE.union(MapFlags::COHERENT),
            phys: 0x20_0000,
            size: 0x20_0000,
            iova: Some(0x1_0000_0000),
        },
        Request::Unmap {
            iova: 0x1_0000_0000,
        },
        Request::Translate {
            iova: 0x1_0000_0123,
        },
        Request::AssignDevice {
            domain: 3,
            unit: None,
        },
        Request::AssignDevice {
            domain: 3,
            unit: Some(0),
        },
        Request::UnassignDevice,
        Request::DrainEvents {
            unit: None,
            neutral: false,
        },
        Request::DrainEvents {
            unit: Some(1),
            neutral: true,
        },
    ];
    for r in requests {
        assert_eq!(Request::decode(&r.encode()), Ok(r), "{r:?}");
    }
    for op in Opcode::ALL {
        assert_eq!(Opcode::from_u16(op.as_u16()), Some(op));
    }
}

#[test]
fn map_flags_zero_means_read_write() {
    let b = RawRequest::new(Opcode::Map, 0, 0x1000, 0x1000, 0).encode();
    match Request::decode(&b).unwrap() {
        Request::Map { flags, .. } => assert_eq!(flags, MapFlags::READ_WRITE),
        other => panic!("{other:?}"),
    }
}

fn decode_raw(raw: RawRequest) -> Result<Request, DecodeError> {
    Request::decode(&raw.encode())
}

#[test]
fn malformed_requests_map_to_errnos() {
    let good = RawRequest::new(Opcode::Query, 0, 0, 0, 0).encode();
    // Length.
    for len in [0, 1, 2, 4, 31] {
        let e = Request::decode(&good[..len]).unwrap_err();
        assert_eq!((e, e.errno(), e.kind()), (DecodeError::Short, EINVAL, 0));
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(Request::decode(&long), Err(DecodeError::Long));
    // Version.
    let mut raw = RawRequest::new(Opcode::Map, 0, 0x1000, 0x1000, 0);
    for version in [0, 2, 0xFFFF] {
        raw.version = version;
        let e = decode_raw(raw).unwrap_err();
        assert_eq!((e.errno(), e.kind()), (EINVAL, 0x10));
    }
    // Unknown opcodes, each echoed in kind.
    for opcode in [0x04u16, 0x0F, 0x13, 0x22, 0x31, 0xFFFF] {
        let mut raw = RawRequest::new(Opcode::Query, 0, 0, 0, 0);
        raw.opcode = opcode;
        let e = decode_raw(raw).unwrap_err();
        assert_eq!(
            (e, e.errno(), e.response().kind),
            (DecodeError::UnknownOpcode(opcode), EINVAL, opcode)
        );
        assert_eq!({ e.response().status }, -EINVAL);
    }
    // Bad arguments.
    let bad = [
        RawRequest::new(Opcode::Map, 0x20, 0x1000, 0x1000, 0),
        RawRequest::new(Opcode::Map, 0, 0x1001, 0x1000, 0),
        RawRequest::new(Opcode::Map, 0, 0x1000, 0x1800, 0),
        RawRequest::new(Opcode::Map, 0, 0x1000, 0, 0),
        RawRequest::new(Opcode::Map, 0, 0x1000, 0x1000, 0x10),
        RawRequest::new(Opcode::Unmap, 0, 0x1234, 0, 0),
        RawRequest::new(Opcode::CreateDomain, 0x1_0000, 0, 0, 0),
        RawRequest::new(Opcode::DestroyDomain, u32::MAX, 0, 0, 0),
        RawRequest::new(Opcode::AssignDevice, 0x10_0000, 0, 0, 0),
    ];
    for raw in bad {
        let e = decode_raw(raw).unwrap_err();
        assert!(matches!(e, DecodeError::InvalidArgument(_)), "{raw:?}");
        assert_eq!(e.errno(), EINVAL);
        assert_eq!(e.kind(), { raw.opcode });
    }
    // Ranges that wrap.
    for raw in [
        RawRequest::new(Opcode::Map, 0, !0xFFF, 0x2000, 0),
        RawRequest::new(Opcode::Map, 0, 0, 0x2000, !0xFFF),
    ] {
        let e = decode_raw(raw).unwrap_err();
        assert_eq!(
            (e, e.errno()),
            (DecodeError::Overflow(Opcode::Map), EOVERFLOW)
        );
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in 0..80 {
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            match Request::decode(&bytes) {
                Ok(r) => assert_eq!(
                    r.opcode().as_u16(),
                    u16::from_le_bytes([bytes[0], bytes[1]])
                ),
                Err(e) => assert!(e.errno() > 0),
            }
            let _ = Response::decode(&bytes);
        }
    }
}
