//! Reading a daemon's metrics endpoint (`--metrics-listen`) in tests.

use std::collections::BTreeMap;

/// Every sample of a scrape, by `name{labels}` as the text format writes it.
pub fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let (status, body) = crate::http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    String::from_utf8(body)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every one of
/// `labels` (`key="value"`).
pub fn sum(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .filter(|(k, _)| labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}
