"""Content moderation before anything is charged or sent upstream (docs/moderation.md).

- `text.py`: the normalization prompts and entries share (NFKC, case folding, invisible
  characters removed, whitespace collapsed);
- `automaton.py`, `blocklist.py`: the entry syntax and one compiled matcher per list;
- `sources.py`, `store.py`: where the global list comes from (config, file, database) and
  the refusals table;
- `model.py`: the moderation model on a channel (`/moderations`), with its cache;
- `service.py`: `Moderation`, what the create path (`tasks/intake.py`) asks.
"""
