#!/bin/sh
# Writes docs/rustdoc-chart.md, the definition of README's `[compare-chart]` image that the
# crate docs (src/lib.rs) use: docs/results/compare.svg as a data URI, because rustdoc cannot
# load README's relative path to it. Run it after replacing compare.svg; `--check` only
# reports whether the file is current (exit status 1 if not).
set -eu
cd "$(dirname "$0")/.."
chart=$(printf '[compare-chart]: data:image/svg+xml;base64,%s' "$(base64 -w0 docs/results/compare.svg)")
if [ "${1-}" = --check ]; then
    if [ "$chart" = "$(cat docs/rustdoc-chart.md)" ]; then
        echo "docs/rustdoc-chart.md is current"
    else
        echo "docs/rustdoc-chart.md is stale: run docs/rustdoc-chart.sh" >&2
        exit 1
    fi
else
    printf '%s\n' "$chart" > docs/rustdoc-chart.md
fi
