// Interop client for mtlsd: Java 17 java.net.http.HttpClient over JSSE.
//
//   java -cp DIR Interop PORT CA_FILE CASE...
//
// CASE is NAME,VERSION,CERTS,KEYS (see tests/clients/go/main.go): several
// certificates become several keystore entries, and JSSE picks one by the
// CertificateRequest's types and CA names. Per case: one client with two
// requests (keep-alive), then a new client on the same SSLContext (its
// session cache: the connection should resume). One JSON line per case.
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;

public class Interop {
    static PrivateKey readKey(String file) throws Exception {
        String pem = Files.readString(Path.of(file));
        String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        byte[] der = Base64.getDecoder().decode(b64);
        for (String alg : new String[] {"EC", "RSA"}) {
            try {
                return KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (Exception e) {
                // try the next algorithm
            }
        }
        throw new IllegalArgumentException(file + ": not a PKCS#8 EC or RSA key");
    }

    static Certificate[] readCerts(String file) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        return cf.generateCertificates(new ByteArrayInputStream(Files.readAllBytes(Path.of(file))))
                .toArray(new Certificate[0]);
    }

    static String json(String s) {
        return s == null ? "null" : "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    static String run(String port, KeyStore trust, String spec) {
        String[] f = spec.split(",");
        List<Integer> statuses = new ArrayList<>();
        String error = null;
        try {
            KeyStore ks = KeyStore.getInstance("PKCS12");
            ks.load(null, null);
            if (!f[2].equals("-")) {
                String[] certs = f[2].split(":"), keys = f[3].split(":");
                for (int i = 0; i < certs.length; i++)
                    ks.setKeyEntry("k" + i, readKey(keys[i]), new char[0], readCerts(certs[i]));
            }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
            kmf.init(ks, new char[0]);
            TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
            tmf.init(trust);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
            SSLParameters params = new SSLParameters();
            params.setProtocols(new String[] {f[1].equals("1.2") ? "TLSv1.2" : "TLSv1.3"});
            String url = "https://127.0.0.1:" + port + "/whoami?c=" + f[0] + "&n=";
            for (int conn = 0; conn < 2; conn++) {
                HttpClient client = HttpClient.newBuilder().sslContext(ctx).sslParameters(params)
                        .version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
                for (int n = conn == 0 ? 1 : 3; n <= (conn == 0 ? 2 : 3); n++) {
                    HttpRequest req = HttpRequest.newBuilder(URI.create(url + n))
                            .timeout(Duration.ofSeconds(10)).build();
                    statuses.add(client.send(req, HttpResponse.BodyHandlers.ofString()).statusCode());
                }
            }
        } catch (Exception e) {
            error = e.toString();
        }
        StringBuilder s = new StringBuilder("{\"case\":" + json(f[0]) + ",\"statuses\":[");
        for (int i = 0; i < statuses.size(); i++)
            s.append(i > 0 ? "," : "").append(statuses.get(i));
        return s.append("],\"error\":").append(json(error)).append("}").toString();
    }

    public static void main(String[] args) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        Certificate[] cas = readCerts(args[1]);
        for (int i = 0; i < cas.length; i++)
            trust.setCertificateEntry("ca" + i, cas[i]);
        for (int i = 2; i < args.length; i++)
            System.out.println(run(args[0], trust, args[i]));
    }
}
