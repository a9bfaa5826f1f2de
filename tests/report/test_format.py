"""One number formatter for the terminal and the HTML report."""

from __future__ import annotations

import math

from verify_samples import verify_result

from parity.report import _format as fmt
from parity.report.html import render_html


def test_measurements_have_three_significant_digits_and_switch_to_e_notation_outside_1e_3_to_1e4():
    assert [fmt.num(x) for x in (0.25, 1e-3, 2e-4, 123.456, 12345.6, 0.0, 42, -0.5)] == \
        ["0.25", "0.001", "2.00e-04", "123", "1.23e+04", "0", "42", "-0.5"]
    assert fmt.num(None) == fmt.MISSING == "-"
    assert fmt.num(math.inf) == "inf" and fmt.num(True) == "True" and fmt.num("x\x1b") == "x\\x1b"


def test_cosine_keeps_the_digits_that_tell_it_from_one():
    assert fmt.cosine(0.99999) == "0.999990" and fmt.num(0.99999) == "1"


def test_durations_sizes_ratios_and_percentages():
    assert [fmt.seconds(x) for x in (2.5, 0.0125, 3.2e-6, 5e-8, None)] == ["2.5 s", "12.5 ms", "3.2 µs", "50 ns", "-"]
    assert fmt.seconds_range(0.0121, 0.0135) == "12.1-13.5 ms" and fmt.seconds_range(0.0121, None) == "12.1-? ms"
    assert [fmt.size(x) for x in (512, 12_000, 730e6, 1.5e9)] == ["512 B", "12.0 kB", "730 MB", "1.5 GB"]
    assert fmt.ratio(1.4) == "1.40x" and fmt.ratio_range(1.3, 1.5) == "1.30-1.50"
    assert fmt.percent(0.75) == "75.0%" and fmt.percent(0.123, digits=0) == "12%"


def test_the_html_report_writes_numbers_like_the_terminal():
    """The HTML page used 4 significant digits and printed a cosine of 0.99999 as 1."""
    result = verify_result(3, diverge_at=1)
    result["stages"][0]["metrics"].update(max_abs=0.000123456, cosine=0.99999)
    page = render_html(result)
    assert "1.23e-04" in page and "0.0001235" not in page
    assert "0.999990" in page
