//! What arrives on the collector's channel: XIDs (from NVML or the kernel log, counted once),
//! ECC errors, clock changes, collection requests.

use std::time::Instant;

use gpuwarden_wire::{xid, Action, EventKind, Severity};

use super::{Collector, Msg, CLOCK_EVENT_MIN_GAP};
use crate::backend::BackendEvent;
use crate::events::{NewEvent, XidSource};
use crate::kmsg::{KmsgReport, PciAddr};

impl Collector {
    fn on_xid(&mut self, gpu: Option<usize>, code: u32, source: XidSource, detail: Option<String>) {
        let idx = gpu.map(|g| g as u32);
        let new = self.dedup.admit(Instant::now(), idx, code, source);
        // One classification for agent, SDK and policy: some XIDs are decided by their text.
        let (severity, action) = xid::classify(code, detail.as_deref());
        // NVML reported this XID first, without the text that decides some XIDs (NVLink5
        // 144–150, 154). When the kernel log's twin decides otherwise, its verdict is
        // reported too (the XID is still counted once); else the twin is dropped.
        let refines =
            !new && source == XidSource::Kmsg && (severity, action) != xid::classify(code, None);
        if !new && !refines {
            tracing::debug!(gpu = ?idx, code, "XID already reported by the other source");
            return;
        }
        let info = xid::lookup(code);
        let name = info.map_or("unknown XID", |x| x.meaning);
        let mut message = match &detail {
            Some(d) if !d.is_empty() => format!("XID {code}: {name} ({d})"),
            _ => format!("XID {code}: {name}"),
        };
        if refines {
            message.push_str("; the kernel log's status refines the NVML report of this XID");
        }
        if let (Some(i), true) = (gpu, new) {
            let g = &mut self.gpus[i];
            *g.xids.entry(code).or_default() += 1;
            g.last_xid = code;
        }
        let e = NewEvent {
            gpu: idx,
            uuid: gpu.map(|i| self.inventory.gpus[i].uuid.clone()),
            kind: EventKind::Xid,
            code: Some(u64::from(code)),
            message,
            severity,
            action: Some(action),
            source: match source {
                XidSource::Nvml => self.backend.name().to_string(),
                XidSource::Kmsg => "kmsg".into(),
            },
        };
        self.record(e);
    }

    fn on_ecc(&mut self, gpu: u32, count: u64, double: bool) {
        let Some(pos) = self.gpu_position(gpu) else {
            tracing::warn!(gpu, count, "ECC event for an unknown GPU");
            return;
        };
        let (code, message, severity, action) = if double {
            (
                2,
                format!("{count} uncorrectable (double-bit) ECC error(s)"),
                Severity::Fatal,
                Action::ResetGpu,
            )
        } else {
            (
                1,
                format!("{count} corrected (single-bit) ECC error(s)"),
                Severity::Info,
                Action::Ignore,
            )
        };
        let e = NewEvent {
            gpu: Some(gpu),
            uuid: Some(self.inventory.gpus[pos].uuid.clone()),
            kind: EventKind::Ecc,
            code: Some(code),
            message,
            severity,
            action: Some(action),
            source: self.backend.name().into(),
        };
        self.record(e);
    }

    fn gpu_position(&self, index: u32) -> Option<usize> {
        self.inventory.gpus.iter().position(|g| g.index == index)
    }

    /// Handles one message; returns false on shutdown.
    pub fn handle(&mut self, msg: Msg, acks: &mut Vec<tokio::sync::oneshot::Sender<()>>) -> bool {
        match msg {
            Msg::Backend(BackendEvent::Xid { gpu, code }) => {
                let pos = self.gpu_position(gpu);
                self.on_xid(pos, code, XidSource::Nvml, None);
            }
            Msg::Backend(BackendEvent::EccSingleBit { gpu, count }) => {
                self.on_ecc(gpu, count, false)
            }
            Msg::Backend(BackendEvent::EccDoubleBit { gpu, count }) => {
                self.on_ecc(gpu, count, true)
            }
            Msg::Backend(BackendEvent::Stopped { reason }) => {
                tracing::warn!(%reason, "the GPU backend's event stream stopped");
                self.gpu_events_up = false;
                self.publish();
            }
            Msg::Backend(BackendEvent::ClockChange { gpu }) => {
                // Clocks change often under load: sample early, at most once a second.
                let due = self
                    .last_collection
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age >= CLOCK_EVENT_MIN_GAP);
                if due {
                    tracing::debug!(gpu, "clock change: sampling early for clock-event reasons");
                    self.collect();
                }
            }
            Msg::Kmsg(KmsgReport::Xid(x)) => {
                self.kmsg.xid_lines += 1;
                let pos = self
                    .inventory
                    .gpus
                    .iter()
                    .position(|g| PciAddr::parse(&g.pci_bus_id) == Some(x.pci));
                if pos.is_none() {
                    self.kmsg.unmatched_lines += 1;
                    tracing::warn!(pci = ?x.pci, code = x.code, "kernel-log XID for a PCI address that is no GPU of this node");
                }
                self.on_xid(pos, x.code, XidSource::Kmsg, Some(x.message));
            }
            Msg::Kmsg(KmsgReport::Malformed(why)) => {
                self.kmsg.malformed_lines += 1;
                tracing::warn!(reason = %why, "skipped a malformed XID line in the kernel log");
            }
            Msg::Kmsg(KmsgReport::Down(why)) => {
                // The reader has stopped: `gpuwarden_agent_kmsg_up` says so from now on.
                tracing::warn!(reason = %why, "the kernel-log reader stopped");
                self.kmsg.up = false;
                self.publish();
            }
            Msg::CollectNow(ack) => {
                self.collect();
                acks.extend(ack);
            }
            Msg::Refresh => {}
            Msg::Shutdown => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, RwLock};

    use super::*;
    use crate::backend::fake::FakeBackend;
    use crate::collector::{Collector, CollectorSettings};
    use crate::events::EventLog;

    /// Issue: a kernel-log reader that had died still reported `gpuwarden_agent_kmsg_up 1`.
    /// Every source that stops says so: the kernel log and the GPU backend's event stream.
    #[test]
    fn a_source_that_stops_reports_down() {
        let shared = Arc::new(RwLock::new(Arc::default()));
        let mut c = Collector::new(
            CollectorSettings::defaults("n1"),
            Arc::new(Arc::new(FakeBackend::new(1, "Fake", 1))),
            Arc::new(Mutex::new(EventLog::new(10, "t".into()))),
            Arc::clone(&shared),
        )
        .unwrap();
        let body = |s: &crate::collector::SharedSnapshot| {
            String::from_utf8_lossy(&s.read().unwrap().body()).into_owned()
        };
        c.set_kmsg_up(true);
        c.set_gpu_events_up(true);
        c.publish();
        let b = body(&shared);
        assert!(b.contains("gpuwarden_agent_kmsg_up 1"), "{b}");
        assert!(b.contains("gpuwarden_agent_gpu_events_up 1"), "{b}");
        let mut acks = Vec::new();
        c.handle(
            Msg::Kmsg(KmsgReport::Down("/dev/kmsg: EIO".into())),
            &mut acks,
        );
        assert!(body(&shared).contains("gpuwarden_agent_kmsg_up 0"));
        c.handle(
            Msg::Backend(BackendEvent::Stopped {
                reason: "NVML event wait failed".into(),
            }),
            &mut acks,
        );
        assert!(body(&shared).contains("gpuwarden_agent_gpu_events_up 0"));
    }

    /// Issue: NVML's report of an NVLink5 XID carries no text, so when it came first the
    /// kernel log's `Fatal` status was dropped as a duplicate and the node never condemned.
    /// The kernel log's verdict is reported when it differs; the XID is counted once.
    #[test]
    fn the_kernel_logs_status_refines_an_xid_nvml_reported_first() {
        let log = Arc::new(Mutex::new(EventLog::new(10, "t".into())));
        let mut c = Collector::new(
            CollectorSettings::defaults("n1"),
            Arc::new(Arc::new(FakeBackend::new(1, "Fake", 1))),
            Arc::clone(&log),
            Arc::new(RwLock::new(Arc::default())),
        )
        .unwrap();
        let mut acks = Vec::new();
        let pci = PciAddr::parse(&c.inventory.gpus[0].pci_bus_id).expect("fake PCI address");
        let kmsg = |code: u32, text: &str| {
            Msg::Kmsg(KmsgReport::Xid(crate::kmsg::KmsgXid {
                pci,
                code,
                message: text.into(),
            }))
        };
        // 145 Fatal: NVML first (table row: not fatal), then the kernel log (fatal).
        c.handle(
            Msg::Backend(BackendEvent::Xid { gpu: 0, code: 145 }),
            &mut acks,
        );
        c.handle(
            kmsg(145, "145, RLW_RXPIPE Fatal XC0 i0 Link 13 (0x0409a0c2)"),
            &mut acks,
        );
        // A twin whose text decides nothing (79 is decided by its code) is dropped.
        c.handle(
            Msg::Backend(BackendEvent::Xid { gpu: 0, code: 79 }),
            &mut acks,
        );
        c.handle(
            kmsg(79, "79, pid=1, GPU has fallen off the bus."),
            &mut acks,
        );
        let page = log.lock().unwrap().page(0, 100);
        let got: Vec<_> = page
            .events
            .iter()
            .map(|e| (e.code, e.severity, e.source.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(145), Severity::Warning, "fake"),
                (Some(145), Severity::Fatal, "kmsg"),
                (Some(79), Severity::Fatal, "fake"),
            ],
            "{got:?}"
        );
        assert_eq!(c.gpus[0].xids.get(&145), Some(&1), "counted once");
    }
}
