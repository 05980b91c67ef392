/** Two local ports for the CLI's connection errors: one a server holds (busy), one nothing listens on (closed). */
import net from "node:net";

export async function busyAndClosedPorts(): Promise<{ busy: net.Server; busyPort: number; closedPort: number }> {
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const closedPort = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return { busy, busyPort: (busy.address() as net.AddressInfo).port, closedPort };
}
