"""Where data and tokens live: destinations behind one small interface (SQLite files today),
the token store, disk health. The only code that speaks SQL."""
