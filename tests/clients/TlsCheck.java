import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * The Java client of certificates.md §7, run by tests/tls_clients/java_client.py:
 *
 * <pre>java TlsCheck HOST PORT ROOT ADDRESS [PROXYHOST PROXYPORT]</pre>
 *
 * A KeyStore holding only ROOT, SNIHostName(HOST) (none for an IP host), endpoint identification
 * "HTTPS"; through a proxy it opens a CONNECT tunnel first. Then GET /. Prints one JSON line
 * {"ok", "detail"}.
 */
public final class TlsCheck {
  private static final int TIMEOUT_MS = 10000;

  public static void main(String[] args) {
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    boolean ok = false;
    String detail;
    try {
      KeyStore store = KeyStore.getInstance("PKCS12");
      store.load(null, null);
      try (InputStream in = new FileInputStream(args[2])) {
        store.setCertificateEntry("root", CertificateFactory.getInstance("X.509").generateCertificate(in));
      }
      TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
      trust.init(store);
      SSLContext context = SSLContext.getInstance("TLS");
      context.init(null, trust.getTrustManagers(), null);
      Socket raw = new Socket();
      if (args.length > 4) {
        raw.connect(new InetSocketAddress(args[4], Integer.parseInt(args[5])), TIMEOUT_MS);
        raw.setSoTimeout(TIMEOUT_MS);
        tunnel(raw, authority(host, port));
      } else {
        raw.connect(new InetSocketAddress(InetAddress.getByName(args[3]), port), TIMEOUT_MS);
        raw.setSoTimeout(TIMEOUT_MS);
      }
      SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(raw, host, port, true);
      SSLParameters parameters = tls.getSSLParameters();
      parameters.setServerNames(isIp(host) ? List.of() : List.of(new SNIHostName(host)));
      parameters.setEndpointIdentificationAlgorithm("HTTPS");
      tls.setSSLParameters(parameters);
      tls.startHandshake();
      String request = "GET / HTTP/1.1\r\nHost: " + authority(host, port) + "\r\nUser-Agent: interca-tls-test java/"
          + System.getProperty("java.version") + "\r\nConnection: close\r\n\r\n";
      tls.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
      String response = new String(tls.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      int body = response.indexOf("\r\n\r\n");
      detail = "verified (" + tls.getSession().getProtocol() + "); body: " + (body < 0 ? "" : response.substring(body + 4));
      ok = true;
      tls.close();
    } catch (Exception e) {
      StringBuilder chain = new StringBuilder();
      for (Throwable t = e; t != null; t = t.getCause()) {
        if (chain.length() > 0) chain.append(" <- ");
        chain.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
      }
      detail = chain.toString();
    }
    System.out.println("{\"ok\": " + ok + ", \"detail\": \"" + json(detail) + "\"}");
    System.exit(ok ? 0 : 1);
  }

  private static void tunnel(Socket raw, String authority) throws Exception {
    OutputStream out = raw.getOutputStream();
    out.write(("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
    out.flush();
    InputStream in = raw.getInputStream();
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    while (!head.toString(StandardCharsets.ISO_8859_1).endsWith("\r\n\r\n")) {
      int b = in.read();  // byte by byte: nothing after the proxy's answer may be consumed
      if (b < 0) throw new java.io.IOException("proxy closed the tunnel");
      head.write(b);
    }
    String status = head.toString(StandardCharsets.ISO_8859_1).split("\r\n")[0];
    if (!status.split(" ")[1].equals("200")) throw new java.io.IOException("proxy refused CONNECT: " + status);
  }

  private static boolean isIp(String host) {
    return host.contains(":") || host.matches("[0-9.]+");
  }

  private static String authority(String host, int port) {
    return (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
  }

  private static String json(String text) {
    StringBuilder out = new StringBuilder();
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') out.append('\\').append(c);
      else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
      else out.append(c);
    }
    return out.toString();
  }
}
