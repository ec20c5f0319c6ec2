"""The glibc settings ``dgm`` runs with (issue 7), shared by the CLI and ``benchmarks.allocator``."""

# glibc told to keep freed memory: never trim the heap, and serve blocks up to 32 MiB from it
# instead of fresh mmaps (32 MiB is glibc's upper limit on 64-bit systems; a larger value is
# silently ignored, leaving every block over 128 KiB to be mapped and faulted in anew)
KEEP_MALLOC = {"MALLOC_TRIM_THRESHOLD_": "-1", "MALLOC_MMAP_THRESHOLD_": str(32 * 2 ** 20)}
