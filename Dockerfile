# The ov-init image: one static binary and nothing else. Build it with
# `make image`, then copy ov-init into your own image:
#
#   FROM ov-init:latest AS ov-init
#   FROM your-base
#   COPY --from=ov-init /ov-init /ov-init
#   ENTRYPOINT ["/ov-init", "--app", "myapp", "--", "/app/server"]
#
# examples/myapp/Dockerfile is a complete application image.
FROM scratch
COPY bin/ov-init /ov-init
ENTRYPOINT ["/ov-init"]
