"""amuro_study: study runner, result records, analyses and reports."""
