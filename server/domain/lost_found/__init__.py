"""Lost & found (issue #7): alerts, watch circles, sightings, durable watcher fan-out."""
