"""Suite `real`: single-cell crops of real fields with per-cell targets measured by classical image analysis."""
