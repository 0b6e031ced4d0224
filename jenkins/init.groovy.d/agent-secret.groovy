// Hands the build agent its connection secret through the volume it shares with the
// controller (jenkins/docker-compose.yml), at every start: init scripts run after
// Configuration as Code has created the node (casc.yaml, jenkins.nodes). The secret is the
// one Jenkins computes for an inbound agent of that name (SlaveComputer.getJnlpMac).
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.StandardCopyOption
import jenkins.slaves.JnlpAgentReceiver

String name = System.getenv('JENKINS_AGENT_NAME')
Path directory = Paths.get(System.getenv('JENKINS_AGENT_SECRET_DIR') ?: '/var/jenkins_agent')
if (!name) {
    throw new IllegalStateException('JENKINS_AGENT_NAME is not set (jenkins/entrypoint.sh)')
}
Path partial = directory.resolve('secret.partial')
// Written whole, then renamed: the agent never reads half a secret.
Files.write(partial, JnlpAgentReceiver.SLAVE_SECRET.mac(name).getBytes('UTF-8'))
Files.move(partial, directory.resolve('secret'), StandardCopyOption.REPLACE_EXISTING,
           StandardCopyOption.ATOMIC_MOVE)
