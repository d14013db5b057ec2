# moto's server, built with no registry pull: FROM the Debian bookworm root fs images.sh imported.
ARG BASE
FROM ${BASE}
COPY wheels /tmp/wheels
RUN set -eux; \
    pip_whl=$(ls /tmp/wheels/pip-*.whl); \
    python3 "$pip_whl/pip" install --no-index --find-links /tmp/wheels --no-compile --no-warn-script-location \
        --disable-pip-version-check --break-system-packages --target /opt/moto \
        $(ls /tmp/wheels/*.whl | grep -v '/pip-'); \
    rm -rf /tmp/wheels; \
    PYTHONPATH=/opt/moto python3 -c "import moto; print('moto', moto.__version__)"
COPY moto_server.py /opt/e2e/moto_server.py
ENV PYTHONUNBUFFERED=1 PYTHONPATH=/opt/moto PATH=/opt/moto/bin:/usr/local/bin:/usr/bin:/bin
EXPOSE 5000
ENTRYPOINT ["python3", "/opt/e2e/moto_server.py", "--host", "0.0.0.0", "--port", "5000"]
