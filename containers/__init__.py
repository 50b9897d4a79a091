"""App containers on the Docker engine: images, lifecycle, state and logs.

The apps task bodies call these small functions; everything here talks to the engine named by
DOCKER_HOST (config.get().docker_host) through the Docker SDK. One container per app, named
`berth-<app_id>` and labelled `berth.managed=true` + `berth.app-id=<app_id>`, so Berth can find
its containers again after a restart without trusting its own database.

Every engine failure surfaces as ContainerError with the engine's own explanation, so a task can
put one readable line into the app's `error`.

    engine.py          the client, ContainerError, names and labels, instance_id
    images.py          ensure_image (pull with condensed progress), image_exists
    ports.py           host ports held by Berth's containers, free_port
    app_containers.py  create_and_start (hardening, private data folder), lifecycle, inspect
    container_logs.py  logs, follow_logs, follow_logs_async
    service_containers.py  the app network; addon service containers (run, inspect, exec with streams)
    service_images.py  quick pulls, images imported from a root filesystem stream, derived images
    registry_auth.py   private registry login check; which registry an image is pulled from
    exec_session.py    exec sessions (stdin, stdout, stderr, resize, exit code) on the event loop
    image_builds.py    `docker build` of deployments with the output streamed, time limit, build labels
    deploy_switch.py   a second container of an app beside the first (zero-downtime deploys), renames
    image_cleanup.py   removing Berth-built images no deployment needs and no container uses

Callers use `import containers; containers.X`: the names below are the package's public face.
"""
from containers.app_containers import (  # noqa: F401
    DATA_MOUNT,
    STOP_TIMEOUT,
    create_and_start,
    inspect,
    list_managed,
    private_data_dir,
    protect_app_folders,
    remove,
    restart,
    start,
    stop,
    update_memory,
    usage_counters,
)
from containers.container_logs import LogFollower, follow_logs, follow_logs_async, logs, service_logs  # noqa: F401
from containers.engine import (  # noqa: F401
    LABEL_APP_ID,
    LABEL_HTTP_PORT,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    ContainerError,
    client,
    container_name,
    data_root,
    instance_id,
    ping,
)
from containers.images import ensure_image, image_exists  # noqa: F401
from containers.ports import PUBLISH_IP, free_port, reserved_ports  # noqa: F401
from containers.service_containers import (  # noqa: F401
    LABEL_SERVICE,
    app_network,
    app_network_name,
    exec_run,
    list_services,
    memory_stats,
    network_gateway,
    remove_app_network,
    remove_service,
    restart_service,
    run_service,
    service_container_name,
    service_inspect,
    start_service,
    stop_service,
    update_service_memory,
)
from containers.service_images import derive_image, image_tags, import_rootfs, remove_image, try_pull  # noqa: F401
