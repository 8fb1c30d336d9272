//! Warm discover latency through satcheld next to a raw HTTP GET of the
//! same listing, in one run. Used by `bench/discover.sh`.
//!
//! discover_latency ADDR REFERENCE HOST:PORT PATH [CALLS]
//!
//! REFERENCE is discovered (over plain HTTP) CALLS times through the daemon
//! at ADDR; then PATH on HOST:PORT is fetched CALLS times with a keep-alive
//! HTTP/1.1 GET. Prints p50 and p90 of each and their ratio.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// One GET on a kept-alive connection; returns the body length.
async fn get(conn: &mut BufReader<TcpStream>, host: &str, path: &str) -> anyhow::Result<usize> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/vnd.oci.image.index.v1+json\r\n\r\n"
    );
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    anyhow::ensure!(line.contains(" 200 "), "GET {path}: {line}");
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await?;
    Ok(length)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 5,
        "usage: discover_latency ADDR REFERENCE HOST:PORT PATH [CALLS]"
    );
    let (addr, reference, host, path) = (&args[1], &args[2], &args[3], &args[4]);
    let calls: usize = args.get(5).map_or(Ok(200), |n| n.parse())?;

    let mut client = satchel_client::connect(addr).await?;
    let request = satchel_client::pb::DiscoverRequest {
        subject: Some(satchel_client::pb::Target {
            reference: reference.clone(),
            plain_http: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut referrers = 0;
    let mut daemon = Vec::with_capacity(calls);
    for i in 0..calls + 10 {
        let start = Instant::now();
        let resp = client.discover(request.clone()).await?.into_inner();
        if i >= 10 {
            daemon.push(start.elapsed());
        }
        referrers = resp.referrers.len();
    }

    let mut conn = BufReader::new(TcpStream::connect(host).await?);
    let mut raw = Vec::with_capacity(calls);
    let mut bytes = 0;
    for i in 0..calls + 10 {
        let start = Instant::now();
        bytes = get(&mut conn, host, path).await?;
        if i >= 10 {
            raw.push(start.elapsed());
        }
    }

    let (d50, d90) = (percentile(&mut daemon, 0.5), percentile(&mut daemon, 0.9));
    let (r50, r90) = (percentile(&mut raw, 0.5), percentile(&mut raw, 0.9));
    println!("{referrers} referrers; raw listing {bytes} bytes; {calls} warm calls each");
    println!("satchel discover (gRPC via satcheld): p50 {d50:>10.3?}  p90 {d90:>10.3?}");
    println!("raw HTTP GET of the listing:          p50 {r50:>10.3?}  p90 {r90:>10.3?}");
    println!(
        "discover p50 / raw GET p50: {:.2}x",
        d50.as_secs_f64() / r50.as_secs_f64()
    );
    Ok(())
}
