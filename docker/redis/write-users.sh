#!/bin/sh
# The Redis container's entrypoint in docker-compose.yml: writes the ACL file of the Avtor
# License Manager's three Redis users, then runs the command it is given (the image's own
# docker-entrypoint.sh and redis-server ... --aclfile, which reads that file).
#
# The passwords come from the environment: REDIS_HOST_PASSWORD, REDIS_WORKER_PASSWORD and
# REDIS_ADMIN_PASSWORD (16 to 256 letters, digits, - _ . ~; `openssl rand -hex 24` makes
# one). The file holds only their SHA-256 hashes, put in place of the placeholders of
# users.acl.template (made from config/redis_users.py). See docs/redis-users.md.
set -eu

template="${REDIS_ACL_TEMPLATE:-/etc/avtor-redis/users.acl.template}"
target="${REDIS_ACL_FILE:-/run/avtor-redis/users.acl}"
# More host users, one `user` line each (python -m config.redis_users host-user NAME), if any.
hosts="${REDIS_HOST_USERS_FILE:-/etc/avtor-redis/hosts.acl}"

password_hash() {
    name="$1"
    eval "password=\${$name:-}"
    if [ -z "$password" ]; then
        echo "write-users.sh: $name is not set: give each Redis user a password (docs/docker.md)." >&2
        exit 1
    fi
    case "$password" in
        *[!A-Za-z0-9_.~-]*)
            echo "write-users.sh: $name may hold only letters, digits and - _ . ~ (openssl rand -hex 24)." >&2
            exit 1
            ;;
    esac
    if [ "${#password}" -lt 16 ] || [ "${#password}" -gt 256 ]; then
        echo "write-users.sh: $name must be 16 to 256 characters long (openssl rand -hex 24)." >&2
        exit 1
    fi
    printf '%s' "$password" | sha256sum | cut -d ' ' -f 1
}

host=$(password_hash REDIS_HOST_PASSWORD)
worker=$(password_hash REDIS_WORKER_PASSWORD)
admin=$(password_hash REDIS_ADMIN_PASSWORD)

umask 077
mkdir -p "$(dirname "$target")"
# Redis reads only `user` lines: the template's comments are left out.
sed -e '/^#/d' \
    -e "s/@HOST_PASSWORD_SHA256@/$host/" \
    -e "s/@WORKER_PASSWORD_SHA256@/$worker/" \
    -e "s/@ADMIN_PASSWORD_SHA256@/$admin/" \
    "$template" > "$target.new"
if [ -f "$hosts" ]; then
    sed -e '/^#/d' -e '/^[[:space:]]*$/d' "$hosts" >> "$target.new"
fi
mv "$target.new" "$target"
# The image's entrypoint runs redis-server as the user redis, which must read the file.
if [ "$(id -u)" = 0 ] && id redis > /dev/null 2>&1; then
    chown -R redis "$(dirname "$target")"
fi

exec "$@"
