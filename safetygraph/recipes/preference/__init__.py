"""The preference recipe (DPO safety tuning): questions from a domain source answered by a careful
teacher (chosen) and a less-safe model (rejected), or pairs a source records, or pairs picked from
several samples by the judge; both sides judged, gated, split by prompt and written in TRL's formats."""
