"""Build and deploy from source: tarballs, git and images; deployment history, health-gated rollout
and rollback, webhooks, image hygiene.

    sources.py      what a deploy may be built from (checked before anything is recorded)
    requests.py     start_deploy, rollback: record the deployment, queue the `deploy.build` task
    store.py        deployment rows, build tags, images_in_use (for the hygiene)
    uploads.py      an uploaded source tarball streamed to disk, size-limited
    checkout.py     git clone / tarball unpack into the task's scratch folder
    task_bodies.py  the task: fetch, build, manifest, rollout
    rollout.py      backup, the new container beside the old, health gate, proxy switch or rollback
    webhooks.py     git sources of apps and the signed push webhooks that deploy them
    hygiene.py      the schedule removing Berth-built images no deployment needs
"""
