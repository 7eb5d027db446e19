//! A minimal Prometheus HTTP API client: one instant query (`GET /api/v1/query`) whose result
//! must be a single number. Built on the hyper/rustls stack kube already uses (no new HTTP
//! client), with a connect timeout, an overall timeout and a response size limit, so a slow or
//! hung Prometheus costs one poll at most.
//!
//! Every failure (no URL configured, connection refused, timeout, HTTP error, a PromQL error,
//! no samples, several series, NaN) is an `Err(message)`: the autoscaler turns it into
//! `ScalingActive=False FailedGetExternalMetric` and does not scale on missing data.
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Whole request timeout (connect, query evaluation, body).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest response accepted: an instant query that returns one sample is a few hundred bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The operator's Prometheus. Cheap to clone.
#[derive(Clone)]
pub struct Prometheus {
    base: Option<Arc<str>>,
    client: HttpsClient,
    timeout: Duration,
}

impl Prometheus {
    /// A client for the Prometheus at `url` (`http://prometheus:9090`, a path prefix is kept);
    /// `None` means no Prometheus is configured, and every query fails saying so.
    pub fn new(url: Option<String>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
        {
            Ok(b) => b,
            Err(e) => {
                // No system CA bundle: plain http still works; https fails verification, and
                // says so in the condition.
                tracing::warn!(error = %e, "no native root certificates; https Prometheus URLs will fail verification");
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots_config())
            }
        };
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let base = url
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .map(Arc::from);
        Self {
            base,
            client,
            timeout: QUERY_TIMEOUT,
        }
    }

    /// Whether a URL is configured.
    pub fn is_configured(&self) -> bool {
        self.base.is_some()
    }

    /// Runs an instant query and returns its single value.
    pub async fn query(&self, query: &str) -> Result<f64, String> {
        let Some(base) = &self.base else {
            return Err("no Prometheus is configured (flotilla run --prometheus-url / FLOTILLA_PROMETHEUS_URL)".to_string());
        };
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .finish();
        let url = format!("{base}/api/v1/query?{encoded}");
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("invalid Prometheus URL {base:?}: {e}"))?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot build the Prometheus request: {e}"))?;
        let call = async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    format!("Prometheus at {base} is unreachable: {}", error_chain(&e))
                })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the Prometheus response failed: {e}"))?
                .to_bytes();
            parse_response(status, &body)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| format!("query {query:?}: {e}")),
            Err(_) => Err(format!(
                "query {query:?}: Prometheus at {base} did not answer within {:?}",
                self.timeout
            )),
        }
    }
}

fn no_roots_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
        // Unreachable in practice: ring supports the default protocol versions.
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    value: (serde_json::Value, String),
}

/// Interprets a `/api/v1/query` response: exactly one sample (an instant vector of one series,
/// or a scalar) whose value is a finite number.
pub fn parse_response(http_status: u16, body: &[u8]) -> Result<f64, String> {
    let response: ApiResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(_) if !(200..300).contains(&http_status) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            return Err(format!("HTTP {http_status}: {}", text.trim()));
        }
        Err(e) => {
            return Err(format!(
                "the response is not the Prometheus API's JSON: {e}"
            ));
        }
    };
    if response.status != "success" {
        return Err(format!(
            "Prometheus error ({}): {}",
            response.error_type.as_deref().unwrap_or("unknown"),
            response.error.as_deref().unwrap_or("no message")
        ));
    }
    let data = response
        .data
        .ok_or_else(|| "the response has no data".to_string())?;
    let value = match data.result_type.as_str() {
        "scalar" => {
            let (_, v): (serde_json::Value, String) = serde_json::from_value(data.result)
                .map_err(|e| format!("malformed scalar result: {e}"))?;
            v
        }
        "vector" => {
            let mut samples: Vec<VectorSample> = serde_json::from_value(data.result)
                .map_err(|e| format!("malformed vector result: {e}"))?;
            match samples.len() {
                0 => {
                    return Err(
                        "the query returned no samples (is the metric being scraped?)".to_string(),
                    );
                }
                1 => samples.swap_remove(0).value.1,
                n => {
                    let first = samples
                        .first()
                        .map(|s| serde_json::Value::Object(s.metric.clone()).to_string())
                        .unwrap_or_default();
                    return Err(format!(
                        "the query returned {n} series (e.g. {first}); aggregate it to one, e.g. with sum(...)"
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the query returned a {other}, not one number; use an instant vector or scalar query"
            ));
        }
    };
    let number: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("the sample value {value:?} is not a number"))?;
    if number.is_finite() {
        Ok(number)
    } else {
        Err(format!("the sample value is {value}, not a finite number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<f64, String> {
        parse_response(200, body.as_bytes())
    }

    #[test]
    fn one_series_is_its_value() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"42.5"]}]}}"#;
        assert_eq!(parse(body), Ok(42.5));
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}"#;
        assert_eq!(parse(scalar), Ok(7.0));
    }

    #[test]
    fn missing_or_ambiguous_data_is_an_error() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse(empty).expect_err("no samples").contains("no samples"));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"2"]}]}}"#;
        let e = parse(two).expect_err("two series");
        assert!(e.contains("2 series") && e.contains("sum("), "{e}");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(matrix).expect_err("matrix").contains("matrix"));
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert!(parse(nan).expect_err("nan").contains("not a finite number"));
        let inf = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert!(parse(inf).is_err());
        let word = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"many"]}}"#;
        assert!(parse(word).is_err());
    }

    #[test]
    fn api_and_http_errors_are_reported() {
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        let e = parse_response(400, bad.as_bytes()).expect_err("error");
        assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
        let e = parse_response(502, b"<html>Bad Gateway</html>").expect_err("502");
        assert!(e.starts_with("HTTP 502"), "{e}");
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"status":"success"}"#).is_err());
    }

    #[tokio::test]
    async fn unconfigured_and_unreachable_prometheus_fail_with_a_reason() {
        let none = Prometheus::new(None);
        assert!(!none.is_configured());
        assert!(
            none.query("up")
                .await
                .expect_err("no url")
                .contains("no Prometheus is configured")
        );

        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let down = Prometheus::new(Some(format!("http://127.0.0.1:{port}/")));
        let e = down.query("sum(x)").await.expect_err("refused");
        assert!(e.contains("unreachable"), "{e}");

        let invalid = Prometheus::new(Some("not a url".into()));
        assert!(invalid.query("x").await.is_err());
    }
}
