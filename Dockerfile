# The Avtor License Manager's image: one image for every role in docker-compose.yml
# (migration, enrolment consumers, the admin worker, beat, the console, the development
# license server, the command line). Redis runs the official image with docker/redis/write-users.sh.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AVTOR_DATA_DIR=/var/lib/avtor

WORKDIR /src
# The dependencies at the versions locked in requirements/image.txt (made by scripts/lock),
# every file checked against its hash; this layer is rebuilt only when the lock changes.
COPY requirements/image.txt ./requirements/
RUN pip install --require-hashes --no-deps -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY adapters ./adapters
COPY cli ./cli
COPY config ./config
COPY domain ./domain
COPY host_client ./host_client
COPY licenseserver ./licenseserver
COPY runner ./runner
COPY tasks ./tasks
COPY web ./web
COPY worker ./worker
# A regular (not editable) install of the project itself: the console scripts avtorlm,
# avtor-enrolment-consumer and avtor-license-server, and `celery -A worker`. Without an
# index, so that the build fails if the lock lacks anything pyproject.toml asks for.
RUN pip install --no-index --no-build-isolation .

# Run as an unprivileged user; beat keeps its schedule file in the data folder.
RUN useradd --system --uid 10001 --home-dir /var/lib/avtor avtor \
    && mkdir -p /var/lib/avtor \
    && chown avtor /var/lib/avtor
USER avtor
WORKDIR /var/lib/avtor
