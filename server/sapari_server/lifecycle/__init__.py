"""The storage lifecycle: what a user's rows hold on disk (quota), deletes that cascade and
can be undone for a while (cascade), and the purge that frees the bytes afterwards (gc)."""
