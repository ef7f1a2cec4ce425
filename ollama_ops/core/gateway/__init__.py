"""The gateway's pure parts: fair-queue ordering, limit arithmetic, key hashing and model patterns, request ids,
the path allow-list and the two error dialects. No I/O imports; tested without sockets."""
