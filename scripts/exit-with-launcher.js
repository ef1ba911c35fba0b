// Preloaded by `npm start` into each app it runs (node -r). The launcher passes a pipe as fd 3
// and holds its other end; the kernel closes that end when the launcher dies, however it dies
// (SIGKILL included). The app then shuts down the ordinary way (its SIGTERM handler), so a killed
// launcher leaves no app holding the ports of the next `npm start`.
const net = require('node:net');

try {
  const launcher = new net.Socket({ fd: 3, readable: true, writable: false });
  launcher.on('error', () => undefined);
  launcher.on('close', () => process.kill(process.pid, 'SIGTERM'));
  launcher.resume();
  // Watching must not keep the app alive on its own.
  launcher.unref();
} catch {
  // Not started by the launcher (no fd 3): nothing to watch.
}
