#!/usr/bin/env python3
"""Times wechatpy's parse_payment_result next to this project's notify parser.

Both parse and verify the same 758-byte MD5-signed payment notify
(crates/wechatpay-v2/benches/payment_notify.xml). The script runs the criterion bench
`cargo bench -p wechatpay-v2 --bench notify`, times wechatpy 1.8.18 before and after it in
the same run, and prints per-notify times and the ratio.

Run it with an interpreter that has wechatpy, e.g. the test venv:
    target/wechatpy-venv/bin/python scripts/bench-wechatpy.py
Options: --no-cargo reuses the last criterion results instead of running the bench.
"""

import json
import pathlib
import statistics
import subprocess
import sys
import timeit

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTIFY = ROOT / "crates/wechatpay-v2/benches/payment_notify.xml"
CRITERION = ROOT / "target/criterion/wechatpay-v2"
API_KEY = "192006250b4c09247ec02edce69f6a2d"


def time_wechatpy(rounds=7, number=2000):
    """Median seconds per parse_payment_result call over several timeit rounds."""
    from wechatpy.pay import WeChatPay

    body = NOTIFY.read_bytes()
    pay = WeChatPay(appid="wx2421b1c4370ec43b", api_key=API_KEY, mch_id="10000100")
    parsed = pay.parse_payment_result(body)
    assert parsed["total_fee"] == 9999, parsed
    runs = timeit.repeat(lambda: pay.parse_payment_result(body), repeat=rounds, number=number)
    return statistics.median(runs) / number


def criterion_ns(bench):
    estimates = json.loads((CRITERION / bench / "new" / "estimates.json").read_text())
    return estimates["median"]["point_estimate"]


def main():
    import wechatpy

    before = time_wechatpy()
    if "--no-cargo" not in sys.argv:
        subprocess.run(
            ["cargo", "bench", "-p", "wechatpay-v2", "--bench", "notify", "--",
             "--warm-up-time", "2", "--measurement-time", "5"],
            cwd=ROOT, check=True,
        )
    after = time_wechatpy()
    python_us = statistics.median([before, after]) * 1e6

    print(f"\nnotify: {NOTIFY.relative_to(ROOT)} ({NOTIFY.stat().st_size} bytes)")
    print(f"wechatpy {wechatpy.__version__} parse_payment_result: {python_us:8.2f} µs/notify "
          f"(before bench {before * 1e6:.2f}, after {after * 1e6:.2f})")
    for bench in ["sign_md5", "sign_hmac_sha256", "verify_md5", "xml_decode",
                  "parse_and_verify_notify"]:
        print(f"wechatpy-v2 {bench:<24} {criterion_ns(bench) / 1000:8.2f} µs")
    rust_us = criterion_ns("parse_and_verify_notify") / 1000
    print(f"ratio parse+verify: {python_us / rust_us:.1f}x (target >= 50x)")


if __name__ == "__main__":
    main()
