# Stand-in for public.ecr.aws/lambda/python:3.11, built with no registry pull: FROM the Debian
# bookworm root fs that images.sh imported (its python3 is CPython 3.11).
#
# What `sam local invoke --invoke-image` relies on (samcli/local/docker/lambda_image.py and
# lambda_container.py): SAM builds `FROM <this> / ADD aws-lambda-rie /var/rapid / ADD <layer> /opt`,
# mounts the function code at /var/task, and runs the emulator (`/var/rapid/aws-lambda-rie`) as the
# entrypoint with no command. The emulator starts the first of /var/runtime/bootstrap,
# /var/task/bootstrap, /opt/bootstrap, with the handler in the environment.
ARG BASE
FROM ${BASE}

ENV LANG=C.UTF-8 \
    TZ=:/etc/localtime \
    PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin \
    LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib \
    LAMBDA_TASK_ROOT=/var/task \
    LAMBDA_RUNTIME_DIR=/var/runtime

COPY wheels /tmp/wheels
# The runtime's own packages live in /var/runtime, last on the path, as in the real image, so a
# layer's boto3 (in /opt/python) wins over the runtime's.
RUN set -eux; \
    pip_whl=$(ls /tmp/wheels/pip-*.whl); \
    python3 "$pip_whl/pip" install --no-index --find-links /tmp/wheels --no-compile --no-warn-script-location \
        --disable-pip-version-check --break-system-packages --target /var/runtime awslambdaric boto3; \
    rm -rf /tmp/wheels /var/runtime/bin; \
    mkdir -p /var/lang/bin /var/task /opt; \
    ln -s /usr/bin/python3 /var/lang/bin/python3.11; \
    ln -s /usr/bin/python3 /var/lang/bin/python3; \
    ln -s /usr/bin/python3 /var/lang/bin/python

COPY bootstrap /var/runtime/bootstrap
COPY lambda-entrypoint.sh /lambda-entrypoint.sh
RUN chmod 0755 /var/runtime/bootstrap /lambda-entrypoint.sh && \
    PYTHONPATH=/var/runtime python3 -c "import awslambdaric, boto3; print('awslambdaric ok, boto3', boto3.__version__)"

WORKDIR /var/task
ENTRYPOINT ["/lambda-entrypoint.sh"]
