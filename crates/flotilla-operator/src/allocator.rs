//! The allocator's own account of the heap, for /metrics: how much the operator's data holds
//! (`allocated`) beside what the process keeps resident (`resident`), so a memory figure can be
//! told apart into live data and the allocator's slack. Nothing without jemalloc.

/// The gauges in OpenMetrics text, or nothing when the allocator cannot say.
pub fn exposition() -> String {
    #[cfg(feature = "jemalloc")]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        // jemalloc's statistics are a snapshot taken at the last epoch advance.
        if epoch::advance().is_ok()
            && let (Ok(allocated), Ok(resident)) =
                (stats::allocated::read(), stats::resident::read())
        {
            return format!(
                "# HELP flotilla_heap_bytes Heap bytes by jemalloc's account: allocated (live data) and resident (pages the allocator holds).\n\
                 # TYPE flotilla_heap_bytes gauge\n\
                 flotilla_heap_bytes{{state=\"allocated\"}} {allocated}\n\
                 flotilla_heap_bytes{{state=\"resident\"}} {resident}\n"
            );
        }
    }
    String::new()
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    /// Both gauges are there and the live data fits in what is resident.
    #[test]
    fn the_heap_is_reported() {
        let text = super::exposition();
        let value = |state: &str| -> u64 {
            let prefix = format!("flotilla_heap_bytes{{state=\"{state}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {state} in {text}"))
        };
        assert!(value("allocated") > 0);
        assert!(value("allocated") <= value("resident"));
    }
}
