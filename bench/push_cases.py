"""``/push`` with JSON against Transit bodies of the same records (issue 5, item 3), and the
latency of 1-record pushes sent one after another on one connection."""

from __future__ import annotations

import aiohttp
from options import Options
from report import Row, at_least, median, ms, percentile, rate
from servers import Server, post
from workload import json_push_body, one_record_push, transit_push_body

MEDIA = {"JSON": "application/json", "Transit": "application/transit+json"}


async def json_vs_transit(
    session: aiohttp.ClientSession, server: Server, options: Options
) -> list[Row]:
    times: dict[str, list[float]] = {encoding: [] for encoding in MEDIA}
    for run in range(options.runs + 1):  # run 0 warms up
        for encoding, media in MEDIA.items():
            table = f"push_{encoding.lower()}_{run}"
            if encoding == "JSON":
                body = json_push_body(table, options.push_records)
            else:
                body = transit_push_body(table, options.push_records)
            elapsed = await post(session, server, "/v2/import/push", body, media)
            if run:
                times[encoding].append(elapsed)
    json_rate, transit_rate = (options.push_records / median(times[e]) for e in MEDIA)
    case = f"/push {options.push_records:,} records"
    ratio = transit_rate / json_rate
    return [
        Row(f"{case}, JSON", rate(json_rate)),
        Row(
            f"{case}, Transit (~m ~f ~u ~i)",
            rate(transit_rate),
            ratio,
            at_least(ratio, 0.5, "≥0.5× JSON"),
        ),
    ]


async def one_connection_latency(
    session: aiohttp.ClientSession, server: Server, options: Options
) -> Row:
    latencies = []
    for i in range(options.latency_requests):
        body = one_record_push("one_connection", i % 100, i)
        latencies.append(await post(session, server, "/v2/import/push", body))
    figure = f"p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}"
    return Row(f"1-record /push, one connection, {options.latency_requests:,} in turn", figure)
