"""The stream consumer: the main thread's read loop (`loop`), the guards that hold it
(`guards`), one batch of entries as named steps (`batch`) and the entries it holds for a retry
(`held`)."""
