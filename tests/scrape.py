"""Read a server's Prometheus /metrics page over HTTP."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(metrics_port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample on the page at 127.0.0.1:`metrics_port`, keyed by (name, frozenset of label items)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(metrics_port: int, name: str, **labels: str) -> float:
    """One sample's value; 0 when the server has not recorded it yet."""
    return scrape(metrics_port).get((name, frozenset(labels.items())), 0.0)
