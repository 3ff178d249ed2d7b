"""Schema, migrations, record types and the value-stream mapper; depends on nothing else of vsm."""
