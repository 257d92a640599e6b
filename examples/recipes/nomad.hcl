# Nomad: a prestart task installs the package into the allocation directory
# that every task of the group shares (/alloc with the docker driver), then
# the app task serves it. The prestart task runs zipdeploy as its container's
# PID 1 (user www-data); `nomad alloc stop` during the download stops it within
# a second (exit 143) with the previous tree in place. When the allocation
# restarts in place, the prestart task runs again and the install is a no-op.
#
# DEST (/alloc/app) is a directory inside the shared mount, never the mount
# itself: zipdeploy keeps its state beside DEST (/alloc/.app.zipdeploy) and
# swaps the new tree in with a rename, which cannot replace a mount point.
#
#   nomad var put nomad/jobs/app package_url='https://user:token@packages.example.com/app-1.4.zip'
#   nomad job run examples/recipes/nomad.hcl
job "app" {
  group "app" {
    network {
      port "http" {
        to = 8080
      }
    }

    task "zipdeploy" {
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      driver = "docker"
      user   = "www-data"
      config {
        # Built from examples/Dockerfile (only /usr/local/bin/zipdeploy is used).
        image = "registry.example.com/app-base:latest"
        # An entrypoint and no args: the image's CMD is dropped, so zipdeploy
        # installs and exits instead of exec'ing an app.
        entrypoint = ["/usr/local/bin/zipdeploy"]
      }
      # The URL, with its credentials, as a file only this task sees.
      template {
        data        = "{{ with nomadVar \"nomad/jobs/app\" }}{{ .package_url }}{{ end }}"
        destination = "${NOMAD_SECRETS_DIR}/package_url"
        perms       = "0400"
        uid         = 33
      }
      env {
        PACKAGE_ZIP_URL_FILE = "${NOMAD_SECRETS_DIR}/package_url"
        PACKAGE_SHA256       = "23745f9b0d4c3a5f8e7c6b1a2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f6"
        PACKAGE_DIR          = "${NOMAD_ALLOC_DIR}/app"
        ZIPDEPLOY_TIMEOUT    = "300"
      }
    }

    task "app" {
      driver = "docker"
      user   = "www-data"
      config {
        image    = "php:8.2-cli"
        work_dir = "/alloc/app"
        command  = "php"
        args     = ["-S", "0.0.0.0:8080", "-t", "public"]
        ports    = ["http"]
      }
      kill_timeout = "10s"
    }
  }
}
