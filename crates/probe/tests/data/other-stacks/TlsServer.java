// A minimal TLS server on Java's JSSE, for bleedwatch's probe tests, run as a single-file source
// program: java TlsServer.java PORT KEYSTORE.p12 PASSWORD. Listens on 127.0.0.1:PORT with the
// key and certificate of a PKCS#12 keystore, TLS 1.0 to 1.2 (JSSE has no heartbeat extension),
// and handshakes each connection on its own thread, which keeps the socket until the client closes.
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.security.KeyStore;
import java.security.Security;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;

public class TlsServer {
    public static void main(String[] args) throws Exception {
        // TLS 1.0 and 1.1 are disabled in the JDK's java.security; let the sweep see them too.
        Security.setProperty("jdk.tls.disabledAlgorithms", "SSLv3, NULL, anon");
        char[] password = args[2].toCharArray();
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(args[1])) {
            keys.load(in, password);
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keys, password);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), null, null);
        SSLServerSocket listener = (SSLServerSocket) context.getServerSocketFactory()
                .createServerSocket(Integer.parseInt(args[0]), 50, InetAddress.getByName("127.0.0.1"));
        listener.setEnabledProtocols(new String[] {"TLSv1", "TLSv1.1", "TLSv1.2"});
        while (true) {
            Socket conn = listener.accept();
            new Thread(() -> serve((SSLSocket) conn)).start();
        }
    }

    static void serve(SSLSocket conn) {
        try (conn) {
            conn.setSoTimeout(15000);
            conn.startHandshake();
            conn.getInputStream().read();
        } catch (Exception e) {
            System.err.println(conn.getRemoteSocketAddress() + ": " + e);
        }
    }
}
