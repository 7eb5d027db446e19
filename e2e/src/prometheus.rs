//! A private Prometheus and Pushgateway for the ScalingPolicy tests and benchmark: both on free
//! loopback ports, Prometheus with a temporary data dir and the configuration in
//! `e2e/prometheus/prometheus.yml` (scrape the Pushgateway every second, `honor_labels`). Tests
//! push values to the Pushgateway and wait until Prometheus returns them; both processes are
//! killed and the data dir removed on drop. Binaries come from `e2e/prometheus/install.sh`.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::repo_root;

/// One gauge for [`PrometheusStack::push_series`]: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// The metric name.
    pub name: &'a str,
    /// Its labels, in order.
    pub labels: Vec<(&'a str, &'a str)>,
    /// The value.
    pub value: f64,
}

/// A running Prometheus + Pushgateway pair.
pub struct PrometheusStack {
    dir: PathBuf,
    prometheus: Option<Child>,
    pushgateway: Option<Child>,
    /// Prometheus' port on 127.0.0.1.
    pub prometheus_port: u16,
    /// The Pushgateway's port on 127.0.0.1.
    pub pushgateway_port: u16,
}

fn binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} is not installed; run e2e/prometheus/install.sh"))
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.0 exchange on loopback: (status code, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connect 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    Ok((code, body.to_string()))
}

/// The Prometheus text exposition of `series`, as gauges (one `# TYPE` per name).
fn exposition(series: &[Series<'_>]) -> String {
    let mut sorted: Vec<&Series<'_>> = series.iter().collect();
    sorted.sort_by_key(|s| s.name);
    let mut body = String::new();
    let mut last = "";
    for s in sorted {
        if s.name != last {
            body.push_str(&format!("# TYPE {} gauge\n", s.name));
            last = s.name;
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                format!("{k}=\"{v}\"")
            })
            .collect();
        body.push_str(&format!("{}{{{}}} {}\n", s.name, labels.join(","), s.value));
    }
    body
}

impl PrometheusStack {
    /// Starts both, Prometheus scraping every second, and waits until it has scraped the
    /// Pushgateway.
    pub fn start() -> Self {
        Self::start_with_scrape_interval("1s")
    }

    /// [`Self::start`] with another scrape interval (a Prometheus duration such as `1370ms`;
    /// at least 1s, the configured scrape timeout being 900ms).
    pub fn start_with_scrape_interval(interval: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "flotilla-prometheus-{}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let [prometheus_port, pushgateway_port] = crate::free_ports();
        let mut stack = Self {
            dir,
            prometheus: None,
            pushgateway: None,
            prometheus_port,
            pushgateway_port,
        };
        let template = std::fs::read_to_string(repo_root().join("e2e/prometheus/prometheus.yml"))
            .expect("e2e/prometheus/prometheus.yml");
        let config = template
            .replace(
                "@PUSHGATEWAY@",
                &format!("127.0.0.1:{}", stack.pushgateway_port),
            )
            .replace("@SCRAPE_INTERVAL@", interval)
            .replace("@TARGETS@", &stack.dir.join("targets").to_string_lossy());
        std::fs::create_dir_all(stack.dir.join("targets")).expect("targets dir");
        std::fs::write(stack.dir.join("prometheus.yml"), config).expect("write config");
        let log = std::fs::File::create(stack.dir.join("pushgateway.log")).expect("log");
        stack.pushgateway = Some(
            Command::new(binary("prometheus-pushgateway"))
                .arg(format!(
                    "--web.listen-address=127.0.0.1:{}",
                    stack.pushgateway_port
                ))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus-pushgateway"),
        );
        stack.start_prometheus();
        stack
    }

    /// Prometheus' base URL (what the operator gets as `--prometheus-url`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.prometheus_port)
    }

    /// Scrapes `target` (`host:port`, its `/metrics`) too, as job `job` (file-based discovery:
    /// Prometheus picks it up within about a second). Query `up{job="<job>"}` for its health.
    pub fn scrape(&self, job: &str, target: &str) {
        let groups = serde_json::json!([{"targets": [target], "labels": {"job": job}}]);
        let path = self.dir.join("targets").join(format!("{job}.json"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, groups.to_string()).expect("write targets");
        std::fs::rename(&tmp, &path).expect("write targets");
    }

    /// (Re)starts Prometheus on the same port and data dir, and waits until it scrapes the
    /// Pushgateway.
    pub fn start_prometheus(&mut self) {
        if self.prometheus.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.join("prometheus.log")).expect("log");
        self.prometheus = Some(
            Command::new(binary("prometheus"))
                .arg(format!(
                    "--config.file={}",
                    self.dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.join("data").display()
                ))
                .arg("--storage.tsdb.retention.time=2h")
                .arg(format!(
                    "--web.listen-address=127.0.0.1:{}",
                    self.prometheus_port
                ))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus"),
        );
        let start = Instant::now();
        loop {
            if let Ok(Some(v)) = self.query(r#"up{job="pushgateway"}"#)
                && v == 1.0
            {
                return;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let log =
                    std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                panic!("Prometheus did not scrape the Pushgateway within 60 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills Prometheus (SIGKILL); the Pushgateway keeps running.
    pub fn stop_prometheus(&mut self) {
        if let Some(mut child) = self.prometheus.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Replaces the values of `job`'s group on the Pushgateway with `metric value` (a gauge).
    /// Tests name the job after their namespace, and the group carries `namespace=<job>` too:
    /// the operator pins every ScalingPolicy query to the policy's namespace with that label.
    pub fn push(&self, job: &str, metric: &str, value: f64) {
        let body = format!("# TYPE {metric} gauge\n{metric} {value}\n");
        let (code, text) = http(
            self.pushgateway_port,
            "PUT",
            &format!("/metrics/job/{}/namespace/{}", encode(job), encode(job)),
            &body,
        )
        .expect("push to the Pushgateway");
        assert!(
            (200..300).contains(&code),
            "Pushgateway answered {code}: {text}"
        );
    }

    /// Replaces the values of `job`'s group on the Pushgateway with these gauges, each with
    /// labels of its own (the group key is `job` alone, unlike [`Self::push`]). Series of one
    /// name must all have the same label names: the Pushgateway refuses a push whose label names
    /// differ from those already held for that name.
    pub fn push_series(&self, job: &str, series: &[Series<'_>]) {
        let body = exposition(series);
        let (code, text) = http(
            self.pushgateway_port,
            "PUT",
            &format!("/metrics/job/{}", encode(job)),
            &body,
        )
        .expect("push to the Pushgateway");
        assert!(
            (200..300).contains(&code),
            "Pushgateway answered {code}: {text}\n{body}"
        );
    }

    /// Runs an instant query: `Ok(None)` when it returns no sample.
    pub fn query(&self, query: &str) -> Result<Option<f64>> {
        let (code, body) = http(
            self.prometheus_port,
            "GET",
            &format!("/api/v1/query?query={}", encode(query)),
            "",
        )?;
        if code != 200 {
            bail!("Prometheus answered {code}: {body}");
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        let result = &v["data"]["result"];
        let sample = match v["data"]["resultType"].as_str() {
            Some("scalar") => result.get(1),
            _ => result.get(0).and_then(|s| s["value"].get(1)),
        };
        Ok(sample.and_then(|s| s.as_str()).and_then(|s| s.parse().ok()))
    }

    /// Waits until `query` returns `expected`; returns the moment it was first seen.
    pub fn wait_for(&self, query: &str, expected: f64, timeout: Duration) -> Instant {
        let start = Instant::now();
        loop {
            let seen = self.query(query).ok().flatten();
            if seen == Some(expected) {
                return Instant::now();
            }
            assert!(
                start.elapsed() < timeout,
                "Prometheus never returned {expected} for {query} (last: {seen:?})"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Pushes `metric value` for `job` and waits until `sum(metric{job="<job>"})` returns it;
    /// returns the moment it became visible.
    pub fn set(&self, job: &str, metric: &str, value: f64) -> Instant {
        self.push(job, metric, value);
        self.wait_for(
            &format!(r#"sum({metric}{{job="{job}"}})"#),
            value,
            Duration::from_secs(30),
        )
    }
}

impl Drop for PrometheusStack {
    fn drop(&mut self) {
        self.stop_prometheus();
        if let Some(mut child) = self.pushgateway.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_exposition_escapes_label_values() {
        let s = Series {
            name: "x",
            labels: vec![("a", "q\"b\\c")],
            value: 1.5,
        };
        assert_eq!(
            exposition(&[s]),
            "# TYPE x gauge\nx{a=\"q\\\"b\\\\c\"} 1.5\n"
        );
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(
            encode(r#"sum(x{job="a b"})"#),
            "sum%28x%7Bjob%3D%22a%20b%22%7D%29"
        );
    }
}
