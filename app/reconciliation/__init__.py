"""Daily reconciliation: the channels' trade bills matched against our attempts and
refunds (DESIGN.md §8). Matching is pure (`matching`); `services` stores runs and
discrepancies and only flushes; `runs` is the boundary step that downloads the bills."""
