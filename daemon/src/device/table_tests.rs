use syscall::error::{EACCES, EAGAIN, EBUSY, EINVAL, EIO, ENODEV, Error};

use super::*;
use crate::device::lifecycle::LifecycleState::*;

fn token(raw: u16) -> Token {
    Token::new(raw).unwrap()
}

fn group_tokens(group: usize) -> impl Iterator<Item = Token> {
    Token::all().skip(group * GROUP_SIZE).take(GROUP_SIZE)
}

/// Walks every non-quarantined device of `group` to Ready.
fn raise_group(table: &mut DeviceTable, group: usize) {
    for t in group_tokens(group).filter(|t| !t.is_quarantined()) {
        table.transition(t, Initializing).unwrap();
        table.transition(t, Ready).unwrap();
    }
}

#[test]
fn starts_offline_with_quarantined_locked() {
    let table = DeviceTable::default();
    for t in Token::all() {
        let expected = if t.is_quarantined() { Locked } else { Offline };
        assert_eq!(table.state(t), expected, "{t}");
    }
    let snapshot = table.snapshot();
    assert_eq!(snapshot.len(), 108);
    let marked: Vec<u16> = snapshot
        .iter()
        .filter(|d| d.is_quarantined)
        .map(|d| d.device_id)
        .collect();
    assert_eq!(marked, QUARANTINED_TOKENS);
    for d in &snapshot {
        if d.is_quarantined {
            assert_eq!(
                (d.state, d.access),
                (DeviceState::Quarantined, DeviceAccess::None)
            );
        } else {
            assert_eq!(
                (d.state, d.access),
                (DeviceState::Offline, DeviceAccess::Read)
            );
        }
    }
    assert!(snapshot.windows(2).all(|w| w[0].device_id < w[1].device_id));
}

#[test]
fn quarantined_devices_never_move_and_are_refused() {
    let mut table = DeviceTable::default();
    for raw in QUARANTINED_TOKENS {
        let t = token(raw);
        for to in LifecycleState::ALL {
            assert_eq!(table.transition(t, to), Err(Error::new(EACCES)));
        }
        assert_eq!(table.check_read(t), Err(Error::new(EACCES)));
        assert_eq!(table.check_write(t), Err(Error::new(EACCES)));
        assert_eq!(table.record_failure(t), None);
        assert_eq!(table.state(t), Locked);
    }
    // Quarantine wins over the thermal guard: EACCES, not EBUSY.
    table.thermal_mut().update(120);
    assert_eq!(table.check_read(token(0x8009)), Err(Error::new(EACCES)));
}

#[test]
fn table_rejects_invalid_transitions() {
    let mut table = DeviceTable::default();
    let t = token(0x8060); // group 8: no dependencies
    assert_eq!(table.transition(t, Ready), Err(Error::new(EINVAL)));
    assert_eq!(table.transition(t, Active), Err(Error::new(EINVAL)));
    assert_eq!(table.transition(t, Error), Err(Error::new(EINVAL)));
    assert_eq!(
        table.state(t),
        Offline,
        "a refused transition changes nothing"
    );
    assert_eq!(
        table.transition(t, Initializing),
        Ok(StateChange {
            token: t,
            from: Offline,
            to: Initializing
        })
    );
    assert_eq!(table.transition(t, Active), Err(Error::new(EINVAL)));
    table.transition(t, Ready).unwrap();
    assert_eq!(table.transition(t, Offline), Err(Error::new(EINVAL)));
    table.transition(t, Locked).unwrap();
    assert_eq!(table.transition(t, Ready), Err(Error::new(EINVAL)));
    table.transition(t, Error).unwrap();
    table.transition(t, Initializing).unwrap();
}

#[test]
fn group_dependencies_are_enforced() {
    let mut table = DeviceTable::default();
    let g1 = token(0x800C); // first device of group 1
    table.transition(g1, Initializing).unwrap();
    assert_eq!(table.transition(g1, Ready), Err(Error::new(EAGAIN)));
    assert_eq!(table.state(g1), Initializing);

    // Group 0 is up once its 9 non-quarantined devices are Ready.
    raise_group(&mut table, 0);
    assert!(table.group_is_up(0));
    table.transition(g1, Ready).unwrap();

    // Group 4 needs 0, 1 and 2: with only 0 up it waits.
    let g4 = token(0x8030);
    table.transition(g4, Initializing).unwrap();
    assert_eq!(table.transition(g4, Ready), Err(Error::new(EAGAIN)));
    // Finish group 1 (g1 is already Ready) and group 2.
    for t in group_tokens(1).skip(1) {
        table.transition(t, Initializing).unwrap();
        table.transition(t, Ready).unwrap();
    }
    assert_eq!(table.transition(g4, Ready), Err(Error::new(EAGAIN)));
    raise_group(&mut table, 2);
    table.transition(g4, Ready).unwrap();

    // Group 5 needs 0..=4; group 3 is still down.
    let g5 = token(0x803C);
    table.transition(g5, Initializing).unwrap();
    assert_eq!(table.transition(g5, Ready), Err(Error::new(EAGAIN)));

    // Ready → Active also needs the dependencies; going down never does.
    table.transition(table_first(0), Error).unwrap();
    assert!(!table.group_is_up(0));
    assert_eq!(table.transition(g1, Active), Err(Error::new(EAGAIN)));
    table.transition(g1, Error).unwrap();

    // Groups 6–8 depend on nothing.
    let g7 = token(0x8054);
    table.transition(g7, Initializing).unwrap();
    table.transition(g7, Ready).unwrap();
    table.transition(g7, Active).unwrap();
    table.transition(g7, Ready).unwrap();
}

fn table_first(group: usize) -> Token {
    Token::from_index(group * GROUP_SIZE).unwrap()
}

#[test]
fn bring_up_in_dependency_order() {
    let mut table = DeviceTable::default();
    let mut probed = Vec::new();
    let report = table.bring_up(42, |t| {
        probed.push(t);
        Ok(u32::from(t.raw()) + 1)
    });
    assert_eq!(report.ready, 103);
    assert!(report.failed.is_empty());
    assert!(report.blocked_groups.is_empty());
    assert_eq!(probed.len(), 103);
    assert!(
        probed.iter().all(|t| !t.is_quarantined()),
        "quarantined never probed"
    );
    let info = table.info(token(0x8001));
    assert_eq!(
        (info.state, info.last_response, info.timestamp),
        (DeviceState::Safe, 0x8002, 42)
    );
    assert_eq!(table.safe_device_count(), 103);
}

#[test]
fn failed_probe_blocks_dependent_groups() {
    let mut table = DeviceTable::default();
    let broken = token(0x8003);
    let report = table.bring_up(1, |t| {
        if t == broken {
            Err(Error::new(EIO))
        } else {
            Ok(0)
        }
    });
    assert_eq!(report.failed, vec![(broken, Error::new(EIO))]);
    assert_eq!(report.blocked_groups, vec![1, 2, 3, 4, 5]);
    // Groups 0 (less one) and 6–8 are up: 8 + 3 × 12.
    assert_eq!(report.ready, 8 + 36);
    assert_eq!(table.state(broken), Error);
    assert_eq!(table.check_read(broken), Err(Error::new(EIO)));
    assert_eq!(table.check_read(token(0x800C)), Err(Error::new(ENODEV)));

    // A second pass retries the failed device and then the blocked groups.
    let report = table.bring_up(2, |_| Ok(0));
    assert_eq!(report.ready, 1 + 12 + 11 + 11 + 12 + 12);
    assert!(report.blocked_groups.is_empty());
    assert_eq!(table.safe_device_count(), 103);
}

#[test]
fn thermal_guard_refuses_reads_and_recovers() {
    let mut table = DeviceTable::default();
    table.bring_up(0, |_| Ok(0));
    let t = token(0x8000);
    assert_eq!(table.check_read(t), Ok(()));
    table.thermal_mut().update(90);
    assert_eq!(table.check_read(t), Err(Error::new(EBUSY)));
    assert_eq!(table.check_write(t), Err(Error::new(EBUSY)));
    assert_eq!(table.info(t).state, DeviceState::ThermalLimit);
    let status = table.system_status(5);
    assert!(!status.thermal_safe);
    assert_eq!(
        (status.current_temp_celsius, status.safe_device_count),
        (90, 0)
    );
    table.thermal_mut().update(82); // below the limit, above resume (80)
    assert_eq!(table.check_read(t), Err(Error::new(EBUSY)));
    table.thermal_mut().update(79);
    assert_eq!(table.check_read(t), Ok(()));
    assert_eq!(table.info(t).state, DeviceState::Safe);
    let status = table.system_status(5);
    assert!(status.thermal_safe && status.kernel_module_loaded);
    assert_eq!(
        (status.safe_device_count, status.quarantined_count),
        (103, 5)
    );
    assert_eq!(status.last_scan_timestamp, 5);
}

#[test]
fn read_policy_by_state() {
    let mut table = DeviceTable::default();
    let t = token(0x8050);
    assert_eq!(table.check_read(t), Err(Error::new(ENODEV)));
    table.transition(t, Initializing).unwrap();
    assert_eq!(table.check_read(t), Err(Error::new(ENODEV)));
    table.transition(t, Ready).unwrap();
    assert_eq!(table.check_read(t), Ok(()));
    table.transition(t, Active).unwrap();
    assert_eq!(table.check_read(t), Ok(()));
    assert!(table.record_failure(t).is_some());
    assert_eq!(table.check_read(t), Err(Error::new(EIO)));
    table.transition(t, Locked).unwrap();
    assert_eq!(table.check_read(t), Err(Error::new(EACCES)));
    assert_eq!(table.info(t).state, DeviceState::Error);
    assert!(!table.info(t).is_quarantined);
}
