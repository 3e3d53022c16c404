"""Scrape ``GET /metrics`` over HTTP and read samples: ``(await scrape(client)).value(...)``."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0.0 if none)."""
        return sum(value for sample, got, value in self.samples
                   if sample == name and all(got.get(k) == v for k, v in labels.items()))

    def labels(self, name: str, label: str) -> set[str]:
        """Every value ``label`` takes among ``name``'s samples."""
        return {got[label] for sample, got, _ in self.samples
                if sample == name and label in got}


async def scrape(client: TestClient, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    return Scrape(await resp.text())
