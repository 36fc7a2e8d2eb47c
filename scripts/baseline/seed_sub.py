# The benchmark's baseline as it was handed over, kept in the repository so that make bench
# (and its smoke run in .ci/run) has its baseline on any checkout. Do not improve it: it is
# what the agent is measured against.
#
# The Python script that edge-agent replaces, kept as a benchmark baseline (paho-mqtt 1.x:
# Debian's python3-paho-mqtt). TLS 1.2 with a CA file, password; per message it opens the log
# in append mode, prints the payload into it and to stdout, and closes it. No fsync.
# To compare like with like it subscribes with QoS 1 and a persistent session (the original
# used QoS 0 and a random client id, and disabled certificate checks). Settings come from
# the environment so a benchmark can point it at its own broker.
import os
import ssl

from paho.mqtt import client as mqtt_client

broker = os.environ.get('SEED_HOST', '127.0.0.1')
port = int(os.environ.get('SEED_PORT', '18883'))
topic = os.environ.get('SEED_TOPIC', 'bench/flood')
client_id = os.environ.get('SEED_ID', 'seed-sub')
username = os.environ.get('SEED_USER', 'bench')
password = os.environ.get('SEED_PASS', 's3cret')
ca_certs = os.environ.get('SEED_CA', 'ca.crt')
log_file = os.environ.get('SEED_LOG', 'seed.log')


def connect_mqtt() -> mqtt_client:
    def on_connect(client, userdata, flags, rc):
        if rc == 0:
            print("Connected to MQTT Broker!")
        else:
            print("Failed to connect, return code %d\n", rc)

    client = mqtt_client.Client(client_id, clean_session=False)
    client.tls_set(ca_certs=ca_certs, tls_version=ssl.PROTOCOL_TLSv1_2)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect(broker, port)
    return client


def subscribe(client: mqtt_client):
    def on_message(client, userdata, msg):
        f = open(log_file, 'a')
        print(f"Received `{msg.payload.decode()}` from `{msg.topic}` topic", file=f)
        print(f"Received `{msg.payload.decode()}` from `{msg.topic}` topic")
        f.close()

    client.subscribe(topic, qos=1)
    client.on_message = on_message


def run():
    client = connect_mqtt()
    subscribe(client)
    client.loop_forever()


if __name__ == '__main__':
    run()
