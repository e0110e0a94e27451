"""Where results live: the database (schema, connection, migrations, reads and writes), the
job status enumeration, and the identity of the worker that holds a job."""
