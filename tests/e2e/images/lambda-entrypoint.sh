#!/bin/sh
# Entrypoint of the stand-in image when run by hand (`docker run IMAGE app.handler`), as in the real
# base image. `sam local invoke` does not use it: it runs the emulator it mounts in.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ] && [ -x /var/rapid/aws-lambda-rie ]; then
  exec /var/rapid/aws-lambda-rie /var/runtime/bootstrap
fi
exec /var/runtime/bootstrap
