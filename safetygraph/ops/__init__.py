"""Operations: alert delivery (``alerts``) and the Kubernetes manifests and pod specs (``k8s``)."""
