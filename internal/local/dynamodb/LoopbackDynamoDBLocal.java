// LoopbackDynamoDBLocal starts DynamoDB Local bound to 127.0.0.1 only.
//
// DynamoDB Local has no option for the address it listens on: its Jetty server connector binds
// every interface. This launcher builds the server exactly as DynamoDB Local's own main does
// (ServerRunner.createServerFromCommandLineArgs, so every command-line option keeps its meaning),
// sets the host of each of its connectors to the loopback address before it starts, and refuses
// to start if any connector cannot be bound that way.
import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    static final String LOOPBACK = "127.0.0.1";

    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server server = (Server) f.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            System.err.println("LoopbackDynamoDBLocal: DynamoDB Local has no connector to bind");
            System.exit(2);
        }
        for (Connector c : connectors) {
            if (!(c instanceof ServerConnector)) {
                System.err.println("LoopbackDynamoDBLocal: unexpected connector " + c.getClass().getName() + "; refusing to listen on every interface");
                System.exit(2);
            }
            ((ServerConnector) c).setHost(LOOPBACK);
        }
        proxy.start();
        System.out.println("LoopbackDynamoDBLocal: listening on " + LOOPBACK + " only");
    }
}
