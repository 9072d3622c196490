"""Loss studies: spec (study files, --losses), run (one run), parallel (backends), collect (rows from
run folders), stats (CI, paired tests), report (results.csv/.md) and plots (PNG)."""
