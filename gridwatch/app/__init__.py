"""The app shell: the `gridwatch` CLI, the demo and the embedded Mosquitto launcher. Nothing imports it."""
